"""Schemathesis hooks for scripts/api-fuzz: every generated call that needs a token gets a fresh
one, so a call that ends the session (logout, logout_all, refresh, deactivate) does not leave the
calls after it testing only the "not logged in" answer.

The token comes from a real login: a code minted by the dev-mode WeChat fake, exchanged at
auth/login_by_weixin. Reads WXAUTH_BASE (http://host:port) from the environment; the API root
and the token header's name come from the served document, as a client would read them.
"""

import os
import random
import uuid

import requests
import schemathesis

BASE = os.environ["WXAUTH_BASE"]
_DOCUMENT = requests.get(BASE + "/openapi.json", timeout=10).json()
API_ROOT = _DOCUMENT["servers"][0]["url"].rstrip("/")
TOKEN_HEADER = _DOCUMENT["components"]["securitySchemes"]["token"]["name"]
FAKE = BASE + "/__wechat"


def mint_code(user):
    minted = requests.post(FAKE + "/fake/code", params={"user": user}, timeout=10)
    minted.raise_for_status()
    return minted.json()["code"]


def login(user):
    answer = requests.post(
        BASE + API_ROOT + "/auth/login_by_weixin",
        json={"code": mint_code(user)},
        timeout=10,
    )
    answer.raise_for_status()
    body = answer.json()
    if body.get("errno") != 0:
        raise RuntimeError("fuzz login failed: errno %s %s" % (body.get("errno"), body.get("errmsg")))
    return body["data"]["token"]


@schemathesis.auth(refresh_interval=None)
class FreshToken:
    def get(self, case, ctx):
        # A user of its own: a concurrent deactivate of another case's user must not refuse this
        # login (errno 700 is right for an account whose deletion began after the login did).
        return login("fuzz-%s" % uuid.uuid4().hex[:12])

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers[TOKEN_HEADER] = data
        # A generated code is never one WeChat issued, so without this only the login's error
        # answers would be checked: every other login gets a real code, keeping the rest of the
        # generated body (a profile, rawData) as it was.
        if case.operation.path == "/auth/login_by_weixin" and isinstance(case.body, dict):
            if random.random() < 0.5:
                case.body["code"] = mint_code("fuzz-login-%d" % random.randrange(8))
