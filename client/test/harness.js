'use strict';
// The client's test harness: the real wxauth binary in dev mode on a free loopback port with a
// fresh database, a small fake of the mini-program runtime (`wx.request` over real HTTP,
// `wx.login` minting a code from the server's built-in WeChat fake, storage in memory), and an
// HTTP shim that can put answers of its own in front of the server.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const PG_SERVER = process.env.PG_SERVER || 'postgres://postgres@127.0.0.1:5432';
// A new connection per request: Node's default agent keeps idle connections, which the server
// closes after its keep-alive timeout, and a request sent on one just closed fails with
// ECONNRESET.
const agent = new http.Agent({ keepAlive: false });

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** One HTTP exchange: { status, body (parsed JSON or null), raw }. */
function fetchJson(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method,
        headers: Object.assign(
          payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          headers
        ),
        timeout: 10000,
        agent,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed = null;
          try {
            parsed = JSON.parse(raw);
          } catch (e) {
            parsed = null;
          }
          resolve({ status: res.statusCode, body: parsed, raw, headers: res.headers });
        });
      }
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

function psql(db, sql) {
  return execFileSync('psql', ['-qAtX', `${PG_SERVER}/${db}?sslmode=disable`, '-c', sql], {
    encoding: 'utf8',
  }).trim();
}

/** The debug binary unless WXAUTH_BIN names another (scripts/client-test builds it). */
function binary() {
  const bin = process.env.WXAUTH_BIN || path.join(ROOT, 'target', 'debug', 'wxauth');
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run scripts/client-test (or cargo build)`);
  return bin;
}

/** Starts wxauth in dev mode on a fresh database; `stop()` ends it and drops the database. */
async function startServer(extraEnv = {}) {
  const port = await freePort();
  const db = `wxauth_client_${crypto.randomBytes(6).toString('hex')}`;
  const base = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH || '',
    DATABASE_URL: `${PG_SERVER}/${db}?sslmode=disable`,
    BIND_ADDR: `127.0.0.1:${port}`,
    HTTP_WORKERS: '2',
    DB_POOL_SIZE: '3',
    RUST_LOG: 'warn',
    ...extraEnv,
  };
  // Started from target/ so that a developer's .env in the repository root cannot switch it to
  // production.
  const cwd = path.join(ROOT, 'target');
  fs.mkdirSync(cwd, { recursive: true });
  const child = spawn(binary(), [], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  child.stderr.on('data', (c) => log.push(c.toString('utf8')));
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });

  const stop = async () => {
    if (exited === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await gone;
      clearTimeout(timer);
    }
    try {
      psql('postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    } catch (e) {
      process.stderr.write(`client tests: could not drop database ${db}: ${e.message}\n`);
    }
  };

  const deadline = Date.now() + 60000;
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`wxauth exited (${JSON.stringify(exited)}):\n${log.join('')}`);
    }
    const ok = await fetchJson(`${base}/healthz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wxauth never answered /healthz:\n${log.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    base,
    api: `${base}/oapro/wx`,
    db,
    log,
    stop,
    sql: (query) => psql(db, query),
    /** WeChat's side: calls the fake has answered, by endpoint. */
    async wechatCalls(endpoint) {
      const r = await fetchJson(`${base}/__wechat/fake/stats`);
      return (r.body && r.body.calls && r.body.calls[endpoint]) || 0;
    },
    /** Makes the fake WeChat misbehave (`{ mode: 'none' }` heals it). */
    async fault(fault) {
      const r = await fetchJson(`${base}/__wechat/fake/fault`, { method: 'POST', body: fault });
      if (r.status !== 200) throw new Error(`fault: ${r.raw}`);
    },
  };
}

/** The appid dev mode's WeChat fake plays (src/startup/mod.rs). */
const DEV_APPID = 'wxdevfake00000000';
/** Dev mode's demo WeCom corp, linked to `DEV_APPID` (src/config.rs). */
const DEV_CORPID = 'wwdevfake00000000';

/**
 * The mini-program runtime as far as the client uses it. `requests` records every wx.request
 * ({ method, path, token, data }); `logins` counts wx.login() calls, `qyLogins` wx.qy.login()
 * calls (WeCom's, minted for the fake's demo corp). `loginFails` makes both fail. `appid` is
 * what getAccountInfoSync reports (null: a base library without it); `environment: 'wxwork'`
 * runs the mini-program inside WeCom.
 */
function fakeWx({ server, user, tokenHeader = 'X-OA-Token', appid = DEV_APPID, environment }) {
  const storage = new Map();
  const runtime = {
    requests: [],
    logins: 0,
    qyLogins: 0,
    loginFails: false,
    storage,
    request(options) {
      const url = new URL(options.url);
      let body;
      if (options.method === 'GET') {
        // As wx.request does: a GET's data becomes the query string.
        for (const [k, v] of Object.entries(options.data || {})) url.searchParams.set(k, String(v));
      } else if (options.data !== undefined) {
        body = JSON.stringify(options.data);
      }
      const headers = Object.assign({}, options.header);
      const token = Object.entries(headers).find(([k]) => k.toLowerCase() === tokenHeader.toLowerCase());
      runtime.requests.push({ method: options.method, path: url.pathname, token: token ? token[1] : null, data: options.data });
      if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
      const req = http.request(url, { method: options.method, headers, timeout: options.timeout || 60000, agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let data = raw;
          try {
            data = JSON.parse(raw);
          } catch (e) {
            // wx.request hands over the text when it is not JSON.
          }
          options.success({ statusCode: res.statusCode, data, header: res.headers });
        });
        res.on('error', (e) => options.fail({ errMsg: `request:fail ${e.message}` }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => options.fail({ errMsg: `request:fail ${e.message}` }));
      if (body !== undefined) req.write(body);
      req.end();
    },
    /** What `requestSubscribeMessage` answers per template id; `null`: it fails. */
    subscribeAnswers: {},
    subscribeRequests: [],
    requestSubscribeMessage(options) {
      runtime.subscribeRequests.push(options.tmplIds);
      if (runtime.subscribeAnswers === null) {
        setImmediate(() => options.fail({ errMsg: 'requestSubscribeMessage:fail can only be invoked by user TAP gesture.', errCode: 10003 }));
        return;
      }
      const res = { errMsg: 'requestSubscribeMessage:ok' };
      for (const id of options.tmplIds) {
        if (runtime.subscribeAnswers[id]) res[id] = runtime.subscribeAnswers[id];
      }
      setImmediate(() => options.success(res));
    },
    login(options) {
      runtime.logins += 1;
      if (runtime.loginFails) {
        setImmediate(() => options.fail({ errMsg: 'login:fail no network' }));
        return;
      }
      fetchJson(`${server.base}/__wechat/fake/code?user=${encodeURIComponent(user)}`, { method: 'POST' }).then(
        (r) => options.success({ code: r.body.code }),
        (e) => options.fail({ errMsg: `login:fail ${e.message}` })
      );
    },
    qy: {
      login(options) {
        runtime.qyLogins += 1;
        if (runtime.loginFails) {
          setImmediate(() => options.fail({ errMsg: 'qy.login:fail no network' }));
          return;
        }
        fetchJson(`${server.base}/__wechat/fake/wecom/code?userid=${encodeURIComponent(user)}`, { method: 'POST' }).then(
          (r) => options.success({ code: r.body.code }),
          (e) => options.fail({ errMsg: `qy.login:fail ${e.message}` })
        );
      },
    },
    getAccountInfoSync() {
      if (appid === null) throw new Error('getAccountInfoSync is not a function');
      return { miniProgram: { appId: appid, envVersion: 'develop', version: '' } };
    },
    getSystemInfoSync() {
      return environment ? { platform: 'devtools', environment } : { platform: 'devtools' };
    },
    getStorageSync(key) {
      // wx storage keeps JSON: a stored object comes back as a copy; a missing key is ''.
      return storage.has(key) ? JSON.parse(storage.get(key)) : '';
    },
    setStorageSync(key, value) {
      storage.set(key, JSON.stringify(value));
    },
    removeStorageSync(key) {
      storage.delete(key);
    },
    /** Requests so far to a path ending in `suffix`. */
    count(suffix) {
      return runtime.requests.filter((r) => r.path.endsWith(suffix)).length;
    },
  };
  return runtime;
}

/**
 * An HTTP proxy in front of the server. `answer(req)` may return an envelope to send instead of
 * forwarding, or `{ delayMs }` to forward the request that much later; `hits` counts requests by
 * path.
 */
async function startShim(target, answer) {
  const hits = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const pathname = new URL(req.url, target).pathname;
      hits.set(pathname, (hits.get(pathname) || 0) + 1);
      const own = answer({ method: req.method, path: pathname, hit: hits.get(pathname) });
      if (own && own.delayMs === undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(own));
        return;
      }
      const forward = () => {
        const headers = Object.assign({}, req.headers);
        delete headers.host;
        const upstream = http.request(new URL(req.url, target), { method: req.method, headers, agent }, (up) => {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        });
        upstream.on('error', () => {
          res.writeHead(502);
          res.end();
        });
        upstream.end(Buffer.concat(chunks));
      };
      if (own) setTimeout(forward, own.delayMs);
      else forward();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    hits,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

module.exports = { startServer, fakeWx, startShim, fetchJson, freePort, DEV_APPID, DEV_CORPID };
