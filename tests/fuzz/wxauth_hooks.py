"""Schemathesis hooks for scripts/api-fuzz: every generated call that needs a token gets a fresh
one, so a call that ends the session (logout, logout_all, refresh, deactivate) does not leave the
calls after it testing only the "not logged in" answer.

The token comes from a real login: a code minted by the dev-mode WeChat fake, exchanged at
auth/login_by_weixin. The logins and links (auth/login_by_weixin, auth/login_by_wecom,
auth/link_weixin, auth/link_wecom) get a code the fake really issued half the time, so their
success answers are checked too. Reads WXAUTH_BASE (http://host:port) from the environment; the
API root and the token header's name come from the served document, as a client would read them.
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
# Dev mode's default mini-program, the one its demo WeCom corp is linked to.
DEV_APPID = os.environ.get("WXAUTH_DEV_APPID", "wxdevfake00000000")


def mint_code(user):
    minted = requests.post(FAKE + "/fake/code", params={"user": user}, timeout=10)
    minted.raise_for_status()
    return minted.json()["code"]


def mint_wecom_code(userid):
    minted = requests.post(FAKE + "/fake/wecom/code", params={"userid": userid}, timeout=10)
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
        path = case.operation.path
        if not isinstance(case.body, dict) or random.random() >= 0.5:
            return
        person = random.randrange(8)
        if path == "/auth/login_by_weixin":
            case.body["code"] = mint_code("fuzz-login-%d" % person)
        elif path == "/auth/link_weixin":
            # A code is an app's: it is linked in the app it came from.
            case.body["code"] = mint_code("fuzz-link-%d" % person)
            case.body["appid"] = DEV_APPID
        elif path in ("/auth/login_by_wecom", "/auth/link_wecom"):
            # The demo corp is the default app's: a generated appid would only be refused.
            case.body["code"] = mint_wecom_code("fuzz-staff-%d" % person)
            case.body.pop("appid", None)
