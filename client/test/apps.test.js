'use strict';
// wxauth.js with several apps: the appid it sends on login, logging in inside WeCom, and linking
// another identity to the account. The server's answers to auth/login_by_wecom, auth/link_weixin
// and auth/link_wecom are played by the shim (with real tokens from the server), so these tests
// hold the client's side of the contract: what it sends, and what it keeps.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { createClient } = require('../wxauth.js');
const { startServer, fakeWx, startShim, fetchJson, DEV_APPID } = require('./harness.js');

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.stop();
});

afterEach(async () => {
  await server.fault({ mode: 'none' });
});

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the promise to reject');
}

/** A real login answer (an envelope) for `user`, from the server itself. */
async function realLoginAnswer(user) {
  const minted = await fetchJson(`${server.base}/__wechat/fake/code?user=${encodeURIComponent(user)}`, { method: 'POST' });
  const r = await fetchJson(`${server.api}/auth/login_by_weixin`, { method: 'POST', body: { code: minted.body.code } });
  assert.equal(r.body.errno, 0, r.raw);
  return r.body;
}

/** A client behind a shim whose `answer` plays the endpoints this build does not have. */
async function behindShim(user, answer, wxOptions = {}) {
  const shim = await startShim(server.base, answer);
  const wx = fakeWx(Object.assign({ server, user }, wxOptions));
  const api = createClient({ apiRoot: `${shim.base}/oapro/wx`, wx });
  return { shim, wx, api };
}

async function errnoWith(token) {
  const r = await fetchJson(`${server.api}/user/index`, { headers: { 'X-OA-Token': token } });
  return r.body.errno;
}

function sentTo(wx, suffix) {
  return wx.requests.filter((r) => r.path.endsWith(suffix));
}

test('login sends the appid getAccountInfoSync reports, and works without it', async () => {
  const wx = fakeWx({ server, user: 'appid-sender' });
  const api = createClient({ apiRoot: server.api, wx });
  await api.login();
  const [login] = sentTo(wx, '/auth/login_by_weixin');
  assert.equal(login.data.appid, DEV_APPID);
  assert.match(login.data.code, /^0/, 'a wx.login code');

  // An old base library without getAccountInfoSync: no appid, the server picks the app.
  const old = fakeWx({ server, user: 'old-base-library', appid: null });
  const oldApi = createClient({ apiRoot: server.api, wx: old });
  await oldApi.login();
  const [oldLogin] = sentTo(old, '/auth/login_by_weixin');
  assert.equal('appid' in oldLogin.data, false);
  assert.ok(oldApi.token());
});

test('inside WeCom: wx.qy.login and auth/login_by_wecom, its answer kept like a WeChat login', async () => {
  const answer = await realLoginAnswer('wecom-staff');
  const { shim, wx, api } = await behindShim(
    'zhangsan',
    ({ path }) => (path.endsWith('/auth/login_by_wecom') ? answer : null),
    { environment: 'wxwork' }
  );
  try {
    const data = await api.request('user/index');
    assert.deepEqual(data, { metting_pubs: 0, metting_joins: 0 }, 'the token works on the server');
    assert.equal(wx.qyLogins, 1);
    assert.equal(wx.logins, 0, 'no wx.login inside WeCom');
    assert.equal(sentTo(wx, '/auth/login_by_weixin').length, 0);
    const [login] = sentTo(wx, '/auth/login_by_wecom');
    assert.match(login.data.code, /^q/, "a code from the fake's WeCom");
    assert.equal(login.data.appid, DEV_APPID);
    assert.equal(login.token, null);
    assert.equal(api.token(), answer.data.token);
    assert.deepEqual(wx.getStorageSync('userInfo'), answer.data.userInfo);
    assert.ok(wx.getStorageSync('tokenExpire'));
  } finally {
    await shim.stop();
  }
});

test('inside WeCom: a refused login rejects with its errno; no wx.qy.login rejects with -2', async () => {
  const { shim, wx, api } = await behindShim(
    'lisi',
    ({ path }) => (path.endsWith('/auth/login_by_wecom') ? { errno: 710, errmsg: 'code 无效', data: null } : null),
    { environment: 'wxwork' }
  );
  try {
    const refused = await rejection(api.request('user/index'));
    assert.equal(refused.errno, 710);
    assert.equal(api.token(), null);
    assert.equal(wx.count('/user/index'), 0);

    wx.loginFails = true;
    const failed = await rejection(api.login());
    assert.equal(failed.errno, -2);
    assert.match(failed.errmsg, /qy\.login:fail/);
    assert.equal(sentTo(wx, '/auth/login_by_wecom').length, 1, 'nothing sent without a code');

    const noQy = fakeWx({ server, user: 'x', environment: 'wxwork' });
    delete noQy.qy;
    const noQyApi = createClient({ apiRoot: `${shim.base}/oapro/wx`, wx: noQy });
    const missing = await rejection(noQyApi.login());
    assert.equal(missing.errno, -2);
    assert.match(missing.errmsg, /wx\.qy\.login is not available/);
  } finally {
    await shim.stop();
  }
});

test('linkWeixin posts a fresh wx.login code with the appid, with the token; keeps the answer', async () => {
  const linkedUser = { userId: 1, nickName: 'linked' };
  const { shim, wx, api } = await behindShim('linker', ({ path }) =>
    path.endsWith('/auth/link_weixin') ? { errno: 0, errmsg: '成功', data: { userInfo: linkedUser } } : null
  );
  try {
    const data = await api.linkWeixin();
    assert.deepEqual(data, { userInfo: linkedUser });
    assert.equal(wx.logins, 2, 'a login for the token, then the code to link');
    const [link] = sentTo(wx, '/auth/link_weixin');
    assert.equal(link.method, 'POST');
    assert.equal(link.token, api.token(), 'sent with the session');
    assert.equal(link.data.appid, DEV_APPID);
    assert.match(link.data.code, /^0/);
    const [login] = sentTo(wx, '/auth/login_by_weixin');
    assert.notEqual(link.data.code, login.data.code, 'its own code');
    assert.deepEqual(wx.getStorageSync('userInfo'), linkedUser);

    // A code and appid from another mini-program are sent as given.
    await api.linkWeixin({ code: 'code-from-the-shop', appid: 'wx2222222222222222' });
    const given = sentTo(wx, '/auth/link_weixin')[1];
    assert.deepEqual(given.data, { code: 'code-from-the-shop', appid: 'wx2222222222222222' });
    assert.equal(wx.logins, 2, 'no wx.login for a code given');
  } finally {
    await shim.stop();
  }
});

test('linkWeCom posts a wx.qy.login code; a new token in the answer replaces the stored one', async () => {
  const merged = await realLoginAnswer('survivor');
  const { shim, wx, api } = await behindShim('staff-linker', ({ path }) =>
    path.endsWith('/auth/link_wecom') ? merged : null
  );
  try {
    await api.login();
    const before = api.token();
    const data = await api.linkWeCom();
    assert.equal(data.token, merged.data.token);
    assert.equal(wx.qyLogins, 1);
    const [link] = sentTo(wx, '/auth/link_wecom');
    assert.equal(link.token, before);
    assert.deepEqual(Object.keys(link.data), ['code']);
    assert.match(link.data.code, /^q/);
    assert.equal(api.token(), merged.data.token, 'the session the server handed over');
    assert.deepEqual(wx.getStorageSync('userInfo'), merged.data.userInfo);
    assert.deepEqual(await api.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
    const deadline = Date.now() + 5000;
    while ((await errnoWith(before)) !== 501) {
      assert.ok(Date.now() < deadline, 'the replaced session is ended on the server');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await shim.stop();
  }
});

test('a refused link rejects with its errno and keeps the session and user as they were', async () => {
  const { shim, wx, api } = await behindShim('unlucky', ({ path }) =>
    path.endsWith('/auth/link_wecom') || path.endsWith('/auth/link_weixin')
      ? { errno: 710, errmsg: 'code 无效', data: null }
      : null
  );
  try {
    await api.login();
    const token = api.token();
    const user = wx.getStorageSync('userInfo');
    assert.equal((await rejection(api.linkWeCom())).errno, 710);
    assert.equal((await rejection(api.linkWeixin())).errno, 710);
    assert.equal(api.token(), token);
    assert.deepEqual(wx.getStorageSync('userInfo'), user);

    // Without the server's endpoints (this build), the link is an API error, never a hang.
    const bare = createClient({ apiRoot: server.api, wx: fakeWx({ server, user: 'bare' }) });
    const missing = await rejection(bare.linkWeCom({ code: 'qsomething' }));
    assert.equal(typeof missing.errno, 'number');
    assert.ok(missing.errno > 0, `an errno from the server: ${missing.errno}`);
  } finally {
    await shim.stop();
  }
});
