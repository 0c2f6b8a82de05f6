'use strict';
// wxauth.js inside a fake mini-program runtime, against the real server (dev mode, fresh
// database): what a mini-program sees on a cold start, a revoked token, a WeChat that refuses the
// login, a busy server, a token near its expiry, and logout.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');

const { createClient, parseTokenExpire } = require('../wxauth.js');
const { startServer, fakeWx, startShim, fetchJson, freePort } = require('./harness.js');

const DAY_MS = 24 * 3600 * 1000;
const BUSY = { errno: 721, errmsg: '服务繁忙，请稍后再试' };

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

function client(user, extra = {}) {
  const wx = fakeWx({ server, user });
  const api = createClient(Object.assign({ apiRoot: server.api, wx }, extra));
  return { wx, api };
}

function liveSessions(userId) {
  return Number(server.sql(`SELECT count(*) FROM user_session WHERE user_id = ${Number(userId)} AND revoked_at IS NULL`));
}

/** The server's answer to `token` on user/index, sent by hand. */
async function errnoWith(token) {
  const r = await fetchJson(`${server.api}/user/index`, { headers: { 'X-OA-Token': token } });
  return r.body.errno;
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the promise to reject');
}

test('cold start: concurrent calls share one silent login, then carry the token', async () => {
  const { wx, api } = client('cold');
  assert.equal(api.token(), null);
  const jscode = await server.wechatCalls('jscode2session');

  const answers = await Promise.all(Array.from({ length: 5 }, () => api.request('user/index')));
  for (const data of answers) assert.deepEqual(data, { metting_pubs: 0, metting_joins: 0 });

  assert.equal(wx.logins, 1, 'one wx.login for five calls');
  assert.equal(wx.count('/auth/login_by_weixin'), 1);
  assert.equal((await server.wechatCalls('jscode2session')) - jscode, 1);
  const token = api.token();
  assert.ok(token, 'the token is stored');
  assert.equal(wx.getStorageSync('token'), token);
  const user = wx.getStorageSync('userInfo');
  assert.equal(user.nickName, '微信用户');
  assert.ok(parseTokenExpire(wx.getStorageSync('tokenExpire')) > Date.now() + 6 * DAY_MS);
  for (const r of wx.requests.filter((r) => r.path.endsWith('/user/index'))) assert.equal(r.token, token);
  assert.equal(liveSessions(user.userId), 1, 'one session row');

  // A call that needs no token never logs in; GET data is the query string.
  const fresh = client('anonymous');
  const page = await fresh.api.request('meeting/list', { data: { page: 1, limit: 2 }, auth: false });
  assert.equal(page.limit, 2);
  assert.equal(page.list.length, 2);
  assert.equal(fresh.wx.logins, 0);
  assert.equal(fresh.wx.requests[0].token, null);
});

test('ten calls meeting a token revoked on the server: one login, ten successes', async () => {
  const { wx, api } = client('revoked');
  await api.login();
  const old = api.token();
  const userId = wx.getStorageSync('userInfo').userId;
  // Revoked behind the client's back (another device's logout_all, an operator).
  const revoked = await fetchJson(`${server.api}/auth/logout_all`, { method: 'POST', headers: { 'X-OA-Token': old }, body: {} });
  assert.equal(revoked.body.errno, 0);
  const jscode = await server.wechatCalls('jscode2session');
  const before = wx.requests.length;

  const answers = await Promise.all(Array.from({ length: 10 }, () => api.request('user/index')));

  assert.equal(answers.length, 10);
  for (const data of answers) assert.deepEqual(data, { metting_pubs: 0, metting_joins: 0 });
  assert.equal(wx.logins, 2, 'the first login and exactly one re-login');
  assert.equal((await server.wechatCalls('jscode2session')) - jscode, 1);
  const sent = wx.requests.slice(before);
  assert.equal(sent.filter((r) => r.path.endsWith('/auth/login_by_weixin')).length, 1);
  const calls = sent.filter((r) => r.path.endsWith('/user/index'));
  assert.equal(calls.length, 20, 'each call sent once with the dead token and once again');
  assert.equal(calls.filter((r) => r.token === old).length, 10);
  const fresh = api.token();
  assert.notEqual(fresh, old);
  assert.equal(calls.filter((r) => r.token === fresh).length, 10);
  assert.equal(await errnoWith(fresh), 0);
  assert.equal(liveSessions(userId), 1);
});

test('a token header the server does not read rejects at once, without logging in again', async () => {
  // Under a name the server knows nothing of (501 `missing`), and under the bearer header a
  // client may default to (501 `wrong_header`).
  for (const [tokenHeader, reason] of [['X-Wrong-Token', 'missing'], ['Authorization', 'wrong_header']]) {
    const { wx, api } = client('wrong-header-' + reason, { tokenHeader });
    if (tokenHeader === 'Authorization') {
      // A client that prefixes its bearer token; wxauth.js sends the token bare.
      const request = wx.request;
      wx.request = (o) => {
        if (o.header.Authorization) o.header.Authorization = 'Bearer ' + o.header.Authorization;
        return request.call(wx, o);
      };
    }
    for (let call = 0; call < 3; call++) {
      const error = await rejection(api.request('user/index'));
      assert.equal(error.errno, -4, `${tokenHeader}: ${error.message}`);
      assert.deepEqual(error.data, { reason });
      assert.match(error.message, new RegExp(`${tokenHeader}.*TOKEN_HEADER`));
    }
    assert.equal(wx.logins, 1, `${tokenHeader}: the cold-start login only, however many calls`);
    assert.equal(wx.count('/auth/login_by_weixin'), 1);
    assert.equal(wx.count('/user/index'), 3, 'each call sent once');
  }
});

test('a second 501 rejects: one re-login per call, never a loop', async () => {
  // The token is read but every session the client gets is revoked at once.
  const { wx, api } = client('revoked-twice');
  await api.login();
  const request = wx.request;
  wx.request = (o) => {
    if (o.url.endsWith('/user/index') && o.header['X-OA-Token']) {
      const token = o.header['X-OA-Token'];
      fetchJson(`${server.api}/auth/logout`, { method: 'POST', headers: { 'X-OA-Token': token }, body: {} }).then(() =>
        request.call(wx, o)
      );
      return;
    }
    return request.call(wx, o);
  };
  const error = await rejection(api.request('user/index'));
  assert.equal(error.errno, 501);
  assert.equal(error.errmsg, '请登录');
  assert.deepEqual(error.data, { reason: 'revoked' });
  assert.equal(wx.logins, 2, 'the first login and one re-login');
  assert.equal(wx.count('/user/index'), 2, 'sent, then sent again once');
});

test('WeChat refusing the login rejects every waiting call with its errno, once', async () => {
  const { wx, api } = client('risky');
  await server.fault({ mode: 'errcode', errcode: 40226 });
  const jscode = await server.wechatCalls('jscode2session');

  const results = await Promise.allSettled(Array.from({ length: 3 }, () => api.request('user/index')));
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.errno, 713);
    assert.equal(r.reason.errmsg, '该微信账号存在风险，暂时无法登录');
    assert.ok(r.reason instanceof Error);
  }
  assert.equal(wx.logins, 1);
  assert.equal(wx.count('/auth/login_by_weixin'), 1, 'no retry');
  assert.equal((await server.wechatCalls('jscode2session')) - jscode, 1);
  assert.equal(wx.count('/user/index'), 0, 'nothing sent without a token');
  assert.equal(api.token(), null);

  // The same for calls whose token died: the re-login fails, they reject with WeChat's errno.
  await server.fault({ mode: 'none' });
  await api.login();
  const token = api.token();
  await fetchJson(`${server.api}/auth/logout`, { method: 'POST', headers: { 'X-OA-Token': token }, body: {} });
  await server.fault({ mode: 'busy' });
  const again = await Promise.allSettled(Array.from({ length: 4 }, () => api.request('user/index')));
  for (const r of again) assert.equal(r.status === 'rejected' && r.reason.errno, 714);
  assert.equal(wx.logins, 3, 'one failed login, one good one, one failed re-login');
  assert.equal(wx.count('/user/index'), 4, 'each call sent once; none resent after the failed login');

  // Nothing is stuck: once WeChat is well, the next call logs in.
  await server.fault({ mode: 'none' });
  assert.deepEqual(await api.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
});

test('wx.login failing rejects with -2; a network failure with -1', async () => {
  const { wx, api } = client('offline');
  wx.loginFails = true;
  const noCode = await rejection(api.request('user/index'));
  assert.equal(noCode.errno, -2);
  assert.equal(wx.count('/auth/login_by_weixin'), 0);

  const port = await freePort();
  const nowhere = fakeWx({ server, user: 'offline' });
  const unreachable = createClient({ apiRoot: `http://127.0.0.1:${port}/oapro/wx`, wx: nowhere });
  const anon = await rejection(unreachable.request('home/index', { auth: false }));
  assert.equal(anon.errno, -1);
  assert.match(anon.errmsg, /request:fail/);
  const cold = await rejection(unreachable.request('user/index'));
  assert.equal(cold.errno, -1, 'the login could not reach the server');
  assert.equal(nowhere.logins, 1);
  assert.equal(nowhere.requests.length, 2, 'no retries');
});

test('busy answers are retried after retryAfterMs, at most twice', async () => {
  // The shim answers 721 to the first login_by_weixin and to the first three user/index.
  const shim = await startShim(server.base, ({ path, hit }) => {
    if (path.endsWith('/auth/login_by_weixin') && hit === 1) return Object.assign({ data: { retryAfterMs: 150 } }, BUSY);
    if (path.endsWith('/user/index') && hit <= 3) return Object.assign({ data: { retryAfterMs: 100 } }, BUSY);
    return null;
  });
  try {
    const wx = fakeWx({ server, user: 'busy' });
    const api = createClient({ apiRoot: `${shim.base}/oapro/wx`, wx });
    const started = Date.now();
    await api.login();
    assert.ok(Date.now() - started >= 150, 'waited retryAfterMs');
    assert.equal(wx.logins, 1, 'the code is sent again, not a new one');
    assert.equal(shim.hits.get('/oapro/wx/auth/login_by_weixin'), 2);

    const t0 = Date.now();
    const busy = await rejection(api.request('user/index'));
    assert.equal(busy.errno, 721);
    assert.equal(busy.errmsg, '服务繁忙，请稍后再试');
    assert.equal(busy.data.retryAfterMs, 100);
    assert.equal(shim.hits.get('/oapro/wx/user/index'), 3, 'sent, then retried twice');
    assert.ok(Date.now() - t0 >= 200);

    assert.deepEqual(await api.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
    assert.equal(wx.logins, 1);
  } finally {
    await shim.stop();
  }
});

test('a token within a day of tokenExpire is renewed once, in the background', async () => {
  let offset = 0;
  const { wx, api } = client('renew', { now: () => Date.now() + offset });
  await api.login();
  const old = api.token();
  const userId = wx.getStorageSync('userInfo').userId;
  await api.request('user/index');
  assert.equal(wx.count('/auth/refresh'), 0, 'seven days left: no renewal');

  offset = 6.5 * DAY_MS;
  const answers = await Promise.all(Array.from({ length: 5 }, () => api.request('user/index')));
  for (const data of answers) assert.deepEqual(data, { metting_pubs: 0, metting_joins: 0 });
  for (let i = 0; i < 50 && api.token() === old; i++) await new Promise((r) => setTimeout(r, 20));

  assert.equal(wx.count('/auth/refresh'), 1, 'single-flight');
  const fresh = api.token();
  assert.notEqual(fresh, old);
  assert.ok(parseTokenExpire(wx.getStorageSync('tokenExpire')) > Date.now() + 6 * DAY_MS);
  assert.equal(await errnoWith(old), 501, 'the old token is dead');
  assert.equal(await errnoWith(fresh), 0);
  assert.equal(liveSessions(userId), 1);
  assert.equal(wx.logins, 1, 'no wx.login');

  await Promise.all(Array.from({ length: 3 }, () => api.request('user/index')));
  assert.equal(wx.count('/auth/refresh'), 1, 'the new token is not renewed again');
});

test('logout ends the session on the server and forgets token and user', async () => {
  const { wx, api } = client('leaving');
  await api.request('user/index');
  const token = api.token();
  const userId = wx.getStorageSync('userInfo').userId;
  assert.equal(liveSessions(userId), 1);

  await api.logout();
  assert.equal(api.token(), null);
  assert.equal(wx.getStorageSync('token'), '');
  assert.equal(wx.getStorageSync('userInfo'), '');
  assert.equal(wx.getStorageSync('tokenExpire'), '');
  const sent = wx.requests[wx.requests.length - 1];
  assert.deepEqual([sent.method, sent.path, sent.token], ['POST', '/oapro/wx/auth/logout', token]);
  assert.equal(liveSessions(userId), 0, 'revoked in the database');
  assert.equal(await errnoWith(token), 501);

  // Nothing to end: no request.
  const count = wx.requests.length;
  await api.logout();
  assert.equal(wx.requests.length, count);

  // Logging in over a live session ends the old one.
  await api.login();
  const first = api.token();
  await api.login();
  assert.notEqual(api.token(), first);
  let firstErrno = await errnoWith(first);
  for (let i = 0; i < 40 && firstErrno !== 501; i++) {
    await new Promise((r) => setTimeout(r, 50));
    firstErrno = await errnoWith(first);
  }
  assert.equal(firstErrno, 501, 'the replaced session was ended');
  assert.equal(liveSessions(userId), 1);

  // A session that already ended on the server: logout still succeeds and forgets locally.
  await api.login();
  const other = api.token();
  await fetchJson(`${server.api}/auth/logout`, { method: 'POST', headers: { 'X-OA-Token': other }, body: {} });
  await api.logout();
  assert.equal(api.token(), null);
});

test('after logout, a late 501 or a late login never logs the user back in', async () => {
  // The shim holds the first user/index and the second login_by_weixin on their way in.
  const shim = await startShim(server.base, ({ path, hit }) => {
    if (path.endsWith('/user/index') && hit === 1) return { delayMs: 300 };
    if (path.endsWith('/auth/login_by_weixin') && hit === 2) return { delayMs: 300 };
    return null;
  });
  try {
    const wx = fakeWx({ server, user: 'late' });
    const api = createClient({ apiRoot: `${shim.base}/oapro/wx`, wx });
    await api.login();
    const userId = wx.getStorageSync('userInfo').userId;

    // A call in flight when the user logs out reaches the server after the session ended.
    const inFlight = api.request('user/index');
    await new Promise((r) => setTimeout(r, 50));
    await api.logout();
    const late = await rejection(inFlight);
    assert.equal(late.errno, 501);
    assert.equal(wx.logins, 1, 'no login after logout');
    assert.equal(api.token(), null);

    // A login still running when the user logs out: its new session is ended, not kept.
    const loggingIn = api.request('user/index');
    await new Promise((r) => setTimeout(r, 100));
    await api.logout();
    const error = await rejection(loggingIn);
    assert.equal(error.errno, 501);
    assert.equal(api.token(), null);
    let live = liveSessions(userId);
    for (let i = 0; i < 40 && live !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      live = liveSessions(userId);
    }
    assert.equal(live, 0, 'the late session was ended on the server');
    assert.equal(Number(server.sql(`SELECT count(*) FROM user_session WHERE user_id = ${Number(userId)}`)), 2);
  } finally {
    await shim.stop();
  }
});

test('bindPhone stores the phone in userInfo; deactivate and exportData call their endpoints', async () => {
  const { wx, api } = client('phone');
  await api.login();
  const minted = await fetchJson(`${server.base}/__wechat/fake/phone_code?user=phone&phone=13800138000`, { method: 'POST' });
  assert.deepEqual(await api.bindPhone({ code: minted.body.code }), { phone: '13800138000' });
  assert.equal(wx.getStorageSync('userInfo').phone, '13800138000');
  const userId = wx.getStorageSync('userInfo').userId;
  assert.equal(server.sql(`SELECT mobile FROM wx_user WHERE id = ${Number(userId)}`), '13800138000');

  const bad = await rejection(api.bindPhone({ code: 'not-a-phone-code' }));
  assert.equal(bad.errno, 718);

  // Whatever the server answers (the endpoints may not exist in this build), the calls settle.
  await Promise.allSettled([api.exportData(), api.deactivate()]);
  const paths = wx.requests.map((r) => `${r.method} ${r.path}`);
  assert.ok(paths.includes('GET /oapro/wx/auth/export'));
  assert.ok(paths.includes('POST /oapro/wx/auth/deactivate'));
});

test('TOKEN_HEADER: a client told the header works against a server that reads it', async () => {
  const litemall = await startServer({ TOKEN_HEADER: 'X-Litemall-Token' });
  try {
    const wx = fakeWx({ server: litemall, user: 'litemall', tokenHeader: 'X-Litemall-Token' });
    const api = createClient({ apiRoot: litemall.api, wx, tokenHeader: 'X-Litemall-Token' });
    assert.deepEqual(await api.request('user/index'), { metting_pubs: 0, metting_joins: 0 });
    assert.equal(wx.logins, 1);
    const token = api.token();
    assert.equal(wx.requests[wx.requests.length - 1].token, token);
    await api.logout();
    const r = await fetchJson(`${litemall.api}/user/index`, { headers: { 'X-Litemall-Token': token } });
    assert.equal(r.body.errno, 501, 'logout reached the server');
  } finally {
    await litemall.stop();
  }
});

test('parseTokenExpire reads China Standard Time', () => {
  assert.equal(parseTokenExpire('2026-12-03 11:45:43'), Date.UTC(2026, 11, 3, 3, 45, 43));
  assert.equal(parseTokenExpire('2026-12-03T11:45:43Z'), null);
  assert.equal(parseTokenExpire(undefined), null);
});
