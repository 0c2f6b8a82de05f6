#!/usr/bin/env python3
"""Load and checks for scripts/deploy-test: the standard library only, bounded in requests and time.

  load.py logins  --url URL --codes FILE [--threads N] [--pause-ms MS] --stop-file F --max-secs S
                  --tokens-out F [--cafile PEM] [--source IP]
      Logs in with one fresh code per request until the stop file appears (or max-secs pass, or
      the codes run out: a failure unless --all-codes), keeping connections alive. Writes the token of every successful login
      to tokens-out. Prints a JSON summary; exit status 1 when any request failed.
  load.py readers --url URL --tokens FILE [--threads N] --secs S
      GET user/index with the given tokens from N threads for S seconds; every answer must be
      errno 0. Prints a JSON summary; exit status 1 on any error.
  load.py check   --url URL --tokens FILE --expect ERRNO [--cafile PEM]
      Every token answers user/index with errno ERRNO. Exit status 1 otherwise.

A failure is anything but HTTP 200 with errno 0 (or the expected errno): an exception (connection
refused, reset), an HTTP status from the proxy (502, 504), or another errno.
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse


class Client:
    """One keep-alive connection, reopened after the server closes it."""

    def __init__(self, url, cafile=None, source=None, timeout=10):
        u = urllib.parse.urlsplit(url)
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.cafile = cafile
        self.source = (source, 0) if source else None
        self.timeout = timeout
        self.conn = None
        self.stale_retries = 0

    def _connect(self):
        if self.https:
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(
                self.host, self.port, context=ctx, timeout=self.timeout,
                source_address=self.source)
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout, source_address=self.source)

    def request(self, method, path, body=None, headers=None):
        """(HTTP status, parsed JSON or None, headers); raises on a connection failure.

        Like browsers and the mini-program's HTTP stack, a request that fails on a *reused*
        keep-alive connection before any answer arrived (the server closed the idle connection
        as the request went out: nginx does on a reload) is sent once more on a new connection.
        Such retries are counted in `stale_retries`; a failure on a new connection is not retried.
        """
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ssl.SSLEOFError):
                self.close()
                if not reused or attempt == 2:
                    raise
                self.stale_retries += 1
            except Exception:
                self.close()
                raise
        if resp.will_close:
            self.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return resp.status, parsed, resp.headers

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.kinds = {}
        self.examples = []
        self.stale_retries = 0

    def add_retries(self, client):
        with self.lock:
            self.stale_retries += client.stale_retries

    def good(self):
        with self.lock:
            self.ok += 1

    def bad(self, kind, detail):
        with self.lock:
            self.failed += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if len(self.examples) < 10:
                self.examples.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}"[:300])

    def summary(self, **extra):
        out = {"ok": self.ok, "failed": self.failed, "failures_by_kind": self.kinds,
               "stale_keepalive_retries": self.stale_retries, "examples": self.examples}
        out.update(extra)
        return out


def classify(status, body, expect_errno=0):
    if status != 200:
        return f"http_{status}"
    if not isinstance(body, dict) or "errno" not in body:
        return "not_envelope"
    if body["errno"] != expect_errno:
        return f"errno_{body['errno']}"
    return None


def cmd_logins(a):
    with open(a.codes) as f:
        codes = [line.strip() for line in f if line.strip()]
    codes.reverse()
    lock = threading.Lock()
    tally = Tally()
    tokens = []
    started = time.monotonic()

    def next_code():
        with lock:
            return codes.pop() if codes else None

    def worker():
        client = Client(a.url, a.cafile, a.source)
        while not os.path.exists(a.stop_file) and time.monotonic() - started < a.max_secs:
            code = next_code()
            if code is None:
                if not a.all_codes:
                    tally.bad("out_of_codes", "the code file ran out")
                break
            try:
                status, body, _ = client.request(
                    "POST", "/auth/login_by_weixin", {"code": code})
            except Exception as e:  # a connection failure is a lost request
                tally.bad("exception", repr(e))
                continue
            kind = classify(status, body)
            if kind:
                tally.bad(kind, json.dumps(body, ensure_ascii=False) if body else f"HTTP {status}")
            else:
                tally.good()
                with lock:
                    tokens.append(body["data"]["token"])
            if a.pause_ms:
                time.sleep(a.pause_ms / 1000)
        client.close()
        tally.add_retries(client)

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(a.tokens_out, "w") as f:
        f.write("\n".join(tokens) + ("\n" if tokens else ""))
    secs = time.monotonic() - started
    print(json.dumps(tally.summary(secs=round(secs, 1),
                                   per_sec=round(tally.ok / secs, 1) if secs else 0)))
    return 1 if tally.failed else 0


def read_tokens(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def cmd_readers(a):
    tokens = read_tokens(a.tokens)
    if not tokens:
        print(json.dumps({"error": "no tokens"}))
        return 1
    tally = Tally()
    deadline = time.monotonic() + a.secs

    def worker(n):
        client = Client(a.url, a.cafile)
        i = n
        while time.monotonic() < deadline:
            token = tokens[i % len(tokens)]
            i += a.threads
            try:
                status, body, _ = client.request("GET", "/user/index", headers={"X-OA-Token": token})
            except Exception as e:
                tally.bad("exception", repr(e))
                continue
            kind = classify(status, body)
            if kind:
                tally.bad(kind, json.dumps(body, ensure_ascii=False) if body else f"HTTP {status}")
            else:
                tally.good()
        client.close()
        tally.add_retries(client)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(tally.summary(threads=a.threads, secs=a.secs)))
    return 1 if tally.failed or tally.ok == 0 else 0


def cmd_check(a):
    tokens = read_tokens(a.tokens)
    tally = Tally()
    client = Client(a.url, a.cafile)
    for token in tokens:
        try:
            status, body, _ = client.request("GET", "/user/index", headers={"X-OA-Token": token})
        except Exception as e:
            tally.bad("exception", repr(e))
            continue
        kind = classify(status, body, a.expect)
        if kind:
            tally.bad(kind, f"token ...{token[-8:]}")
        else:
            tally.good()
    print(json.dumps(tally.summary(expected_errno=a.expect)))
    return 1 if tally.failed or not tokens else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logins")
    lg.add_argument("--url", required=True)
    lg.add_argument("--codes", required=True)
    lg.add_argument("--threads", type=int, default=2)
    lg.add_argument("--pause-ms", type=int, default=5)
    lg.add_argument("--stop-file", required=True)
    lg.add_argument("--max-secs", type=float, required=True)
    lg.add_argument("--tokens-out", required=True)
    lg.add_argument("--all-codes", action="store_true",
                    help="one login per code, then stop (running out is no failure)")
    lg.add_argument("--cafile")
    lg.add_argument("--source")
    rd = sub.add_parser("readers")
    rd.add_argument("--url", required=True)
    rd.add_argument("--tokens", required=True)
    rd.add_argument("--threads", type=int, default=24)
    rd.add_argument("--secs", type=float, required=True)
    rd.add_argument("--cafile")
    ck = sub.add_parser("check")
    ck.add_argument("--url", required=True)
    ck.add_argument("--tokens", required=True)
    ck.add_argument("--expect", type=int, required=True)
    ck.add_argument("--cafile")
    a = p.parse_args()
    return {"logins": cmd_logins, "readers": cmd_readers, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
