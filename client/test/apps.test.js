'use strict';
// wxauth.js with several apps: the appid it sends on login, logging in inside WeCom, and linking
// another identity to the account. Logging in inside WeCom and linkWeCom run against the server;
// linkWeixin's answers are played by a shim (with real tokens from the server), to hold what the
// client keeps of answers the dev server never gives.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { createClient } = require('../wxauth.js');
const { startServer, fakeWx, startShim, fetchJson, DEV_APPID, DEV_CORPID } = require('./harness.js');

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

test('inside WeCom: wx.qy.login and auth/login_by_wecom, kept like a WeChat login, re-login included', async () => {
  const wx = fakeWx({ server, user: 'zhangsan', environment: 'wxwork' });
  const api = createClient({ apiRoot: server.api, wx });
  const data = await api.request('user/index');
  assert.deepEqual(data, { metting_pubs: 0, metting_joins: 0 }, 'the token works on the server');
  assert.equal(wx.qyLogins, 1);
  assert.equal(wx.logins, 0, 'no wx.login inside WeCom');
  assert.equal(sentTo(wx, '/auth/login_by_weixin').length, 0);
  const [login] = sentTo(wx, '/auth/login_by_wecom');
  assert.match(login.data.code, /^q/, "a code from the fake's WeCom");
  assert.equal(login.data.appid, DEV_APPID);
  assert.equal(login.token, null);
  const user = wx.getStorageSync('userInfo');
  assert.equal(user.corpId, DEV_CORPID);
  assert.equal(user.corpUserId, 'zhangsan');
  assert.equal(typeof user.userId, 'number');
  assert.ok(wx.getStorageSync('tokenExpire'));
  assert.equal(
    server.sql(`SELECT user_id FROM user_identity WHERE kind = 2 AND app_id = '${DEV_CORPID}' AND subject = 'zhangsan'`),
    String(user.userId)
  );

  // The session ended on the server: one silent re-login, through WeCom again, the same account.
  const before = api.token();
  const ended = await fetchJson(`${server.api}/auth/logout_all`, { method: 'POST', headers: { 'X-OA-Token': before } });
  assert.equal(ended.body.errno, 0, ended.raw);
  assert.deepEqual(await api.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
  assert.equal(wx.qyLogins, 2);
  assert.equal(wx.logins, 0);
  assert.notEqual(api.token(), before);
  assert.equal(wx.getStorageSync('userInfo').userId, user.userId);
});

test('inside WeCom: a refused login rejects with its errno; no wx.qy.login rejects with -2', async () => {
  // WeCom refuses every code (40029): the server answers 710.
  await server.fault({ mode: 'errcode', errcode: 40029 });
  const wx = fakeWx({ server, user: 'lisi', environment: 'wxwork' });
  const api = createClient({ apiRoot: server.api, wx });
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
  const noQyApi = createClient({ apiRoot: server.api, wx: noQy });
  const missing = await rejection(noQyApi.login());
  assert.equal(missing.errno, -2);
  assert.match(missing.errmsg, /wx\.qy\.login is not available/);
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

test('linkWeCom: the staff account of the same person is merged into the WeChat one, whose client lands there', async () => {
  // Inside WeCom first: an account of its own (WeCom gives no unionid).
  const staffWx = fakeWx({ server, user: 'wanglei', environment: 'wxwork' });
  const staff = createClient({ apiRoot: server.api, wx: staffWx });
  await staff.login();
  const staffToken = staff.token();
  const staffId = staffWx.getStorageSync('userInfo').userId;
  // Then in WeChat: another account, which links the WeCom identity.
  const wx = fakeWx({ server, user: 'wanglei' });
  const api = createClient({ apiRoot: server.api, wx });
  await api.login();
  const token = api.token();
  const userId = wx.getStorageSync('userInfo').userId;
  assert.notEqual(userId, staffId);

  const data = await api.linkWeCom();
  assert.equal(data.userInfo.userId, userId, "the caller's account survives");
  assert.equal(data.userInfo.corpId, DEV_CORPID);
  assert.equal(data.userInfo.corpUserId, 'wanglei');
  assert.equal(wx.qyLogins, 1, 'a wx.qy.login code');
  const [link] = sentTo(wx, '/auth/link_wecom');
  assert.equal(link.method, 'POST');
  assert.equal(link.token, token, 'sent with the session');
  assert.deepEqual(Object.keys(link.data), ['code']);
  assert.match(link.data.code, /^q/);
  assert.equal(api.token(), token, 'the session stays');
  assert.deepEqual(wx.getStorageSync('userInfo'), data.userInfo);
  assert.equal(server.sql(`SELECT count(*) FROM wx_user WHERE id = ${staffId}`), '0', 'merged');

  // The staff account's session ended with it: its client logs in again, through WeCom, and
  // lands on the account that survived.
  assert.equal(await errnoWith(staffToken), 501);
  assert.deepEqual(await staff.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
  assert.equal(staffWx.qyLogins, 2);
  assert.equal(staffWx.getStorageSync('userInfo').userId, userId);
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

    // The server's own refusal of a code WeCom never issued, the session kept.
    const bareWx = fakeWx({ server, user: 'bare' });
    const bare = createClient({ apiRoot: server.api, wx: bareWx });
    const refused = await rejection(bare.linkWeCom({ code: 'qsomething' }));
    assert.equal(refused.errno, 710);
    assert.equal(bareWx.qyLogins, 0, 'the code given is sent');
    assert.deepEqual(await bare.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
  } finally {
    await shim.stop();
  }
});
