'use strict';
/**
 * wxauth's mini-program side: login with wx.login() (inside WeCom with wx.qy.login()), a token
 * kept in storage, and `request` for the API under `{CONTEXT_PATH}/wx/`. Dependency-free CommonJS; a mini-program `require`s
 * it, Node loads it for the tests. Written without async/await, `?.`, `??` or object spread, so
 * that it runs as is on old base libraries.
 *
 *   const { createClient } = require('./wxauth.js');
 *   const api = createClient({ apiRoot: 'https://example.com/oapro/wx' });
 *   api.request('user/index').then(data => ...).catch(err => err.errno ...);
 */

/** `wx.request` failed: no network, DNS, TLS, timeout. */
const NETWORK_ERRNO = -1;
/** `wx.login()` (or inside WeCom `wx.qy.login()`) failed or gave no code. */
const WX_LOGIN_ERRNO = -2;
/** The server answered something that is not the `{errno, errmsg, data}` envelope. */
const BAD_ANSWER_ERRNO = -3;
/**
 * The server did not find the token the client sent (501 with `data.reason` `missing` or
 * `wrong_header`): `tokenHeader` is not the server's TOKEN_HEADER. No login can fix that, so
 * the call rejects at once instead of logging in again and again.
 */
const MISCONFIGURED_ERRNO = -4;
/** 501 reasons that say the token was not read where the client put it. */
const HEADER_REASONS = ['missing', 'wrong_header'];
/** `wx.requestSubscribeMessage` failed or gave no answer for the template. */
const WX_SUBSCRIBE_ERRNO = -5;

const UNLOGIN_ERRNO = 501;
const BUSY_ERRNO = 721;
/** A busy answer is retried at most this many times per call. */
const MAX_BUSY_RETRIES = 2;
/** Waits for a busy answer without `data.retryAfterMs`, and the longest one honoured. */
const DEFAULT_BUSY_WAIT_MS = 1000;
const MAX_BUSY_WAIT_MS = 10000;

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;
/** After a failed `auth/refresh`, the next attempt waits this long. */
const REFRESH_BACKOFF_MS = 60 * 1000;
/** `tokenExpire` is China Standard Time. */
const CST_OFFSET_MS = 8 * HOUR_MS;
const WX_LOGIN_TIMEOUT_MS = 10000;

const STORAGE_TOKEN = 'token';
const STORAGE_TOKEN_EXPIRE = 'tokenExpire';
const STORAGE_USER = 'userInfo';

function apiError(errno, errmsg, data) {
  const error = new Error(errmsg || 'errno ' + errno);
  error.errno = errno;
  error.errmsg = errmsg || '';
  error.data = data === undefined ? null : data;
  return error;
}

/** `yyyy-MM-dd HH:mm:ss` in China Standard Time → epoch ms; null when it is not that. */
function parseTokenExpire(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(String(text || ''));
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) - CST_OFFSET_MS;
}

/** A 501 for a call that did carry a token, saying the server found none where it looks. */
function tokenHeaderUnread(envelope) {
  const reason = envelope.data && envelope.data.reason;
  return envelope.errno === UNLOGIN_ERRNO && HEADER_REASONS.indexOf(reason) >= 0;
}

function isEnvelope(body) {
  return body !== null && typeof body === 'object' && typeof body.errno === 'number';
}

function unwrap(envelope) {
  if (envelope.errno === 0) return envelope.data === undefined ? null : envelope.data;
  throw apiError(envelope.errno, envelope.errmsg, envelope.data);
}

function delay(ms) {
  return new Promise(function (resolve) {
    setTimeout(resolve, ms);
  });
}

function busyWait(data) {
  const ms = data && typeof data.retryAfterMs === 'number' ? data.retryAfterMs : NaN;
  if (!(ms >= 0)) return DEFAULT_BUSY_WAIT_MS;
  return Math.min(ms, MAX_BUSY_WAIT_MS);
}

function noop() {}

/**
 * options.apiRoot   the API root, e.g. 'https://example.com/oapro/wx' (required)
 * options.wx        the mini-program runtime (default: the global `wx`)
 * options.tokenHeader  the server's TOKEN_HEADER (default 'X-OA-Token')
 * options.timeout   passed to wx.request as its timeout in ms (default: app.json's networkTimeout)
 * options.now       the clock, ms since the epoch (default Date.now; tests move it)
 */
function createClient(options) {
  const opts = options || {};
  if (typeof opts.apiRoot !== 'string' || opts.apiRoot === '') {
    throw new TypeError('createClient: apiRoot is required, e.g. https://example.com/oapro/wx');
  }
  const runtime = opts.wx || (typeof wx !== 'undefined' ? wx : undefined); // eslint-disable-line no-undef
  if (!runtime || typeof runtime.request !== 'function') {
    throw new TypeError('createClient: no wx runtime (pass { wx })');
  }
  const apiRoot = opts.apiRoot.replace(/\/+$/, '');
  const tokenHeader = opts.tokenHeader || 'X-OA-Token';
  const timeout = opts.timeout;
  const now = typeof opts.now === 'function' ? opts.now : Date.now;

  // The running login, shared by every call that needs one.
  let loginFlight = null;
  // Logins started so far, and the newest one (settled or not): a call whose 501 comes back
  // after a login that started later than the call was sent takes that login's outcome.
  let loginSeq = 0;
  let lastLogin = null;
  // Bumped by logout(): answers to calls sent before it never log the user back in.
  let epoch = 0;
  let refreshFlight = null;
  let refreshNotBefore = 0;
  // When the token in `renewal.token` is due for auth/refresh.
  let renewal = { token: null, at: Infinity };

  // ---- storage: the token is read from storage on every call, so a page that writes it
  // (an older login page) and this module agree ----

  function read(key) {
    try {
      return runtime.getStorageSync(key);
    } catch (e) {
      return '';
    }
  }

  function write(key, value) {
    try {
      runtime.setStorageSync(key, value);
    } catch (e) {
      // Storage full or unavailable: the token still lives in this run's memory of the server.
    }
  }

  function remove(key) {
    try {
      runtime.removeStorageSync(key);
    } catch (e) {
      // Nothing to forget.
    }
  }

  function storedToken() {
    const token = read(STORAGE_TOKEN);
    return typeof token === 'string' && token !== '' ? token : null;
  }

  /** Keeps a token from login or refresh, and when to renew it. */
  function keepToken(token, tokenExpire) {
    write(STORAGE_TOKEN, token);
    write(STORAGE_TOKEN_EXPIRE, tokenExpire);
    const expires = parseTokenExpire(tokenExpire);
    const received = now();
    const left = expires === null ? NaN : expires - received;
    // A day before expiry; a token that lives less than two days, at half its life. A clock
    // that disagrees with the server's (no time left at all) renews nothing: the server's 501
    // still decides.
    const at = left > 0 ? Math.max(expires - DAY_MS, received + left / 2) : Infinity;
    renewal = { token: token, at: at };
  }

  function forgetSession() {
    remove(STORAGE_TOKEN);
    remove(STORAGE_TOKEN_EXPIRE);
    remove(STORAGE_USER);
    renewal = { token: null, at: Infinity };
  }

  function renewAt(token) {
    if (renewal.token === token) return renewal.at;
    // A token from an earlier run, or written by a page: a day before its expiry.
    const expires = parseTokenExpire(read(STORAGE_TOKEN_EXPIRE));
    const at = expires === null ? Infinity : expires - DAY_MS;
    renewal = { token: token, at: at };
    return at;
  }

  // ---- the wire ----

  /** One wx.request; resolves with the envelope, rejects only when there is none. */
  function send(path, method, data, token) {
    return new Promise(function (resolve, reject) {
      const header = {};
      if (method !== 'GET') header['content-type'] = 'application/json';
      if (token) header[tokenHeader] = token;
      const req = {
        url: apiRoot + '/' + String(path).replace(/^\/+/, ''),
        method: method,
        header: header,
        dataType: 'json',
        success: function (res) {
          let body = res ? res.data : undefined;
          if (typeof body === 'string') {
            try {
              body = JSON.parse(body);
            } catch (e) {
              body = undefined;
            }
          }
          if (isEnvelope(body)) {
            resolve(body);
          } else {
            const status = res ? res.statusCode : undefined;
            reject(apiError(BAD_ANSWER_ERRNO, 'the server answered HTTP ' + status + ' without an envelope', { statusCode: status }));
          }
        },
        fail: function (err) {
          const errMsg = (err && err.errMsg) || 'request:fail';
          reject(apiError(NETWORK_ERRNO, errMsg, { errMsg: errMsg }));
        },
      };
      if (data !== undefined) req.data = data;
      else if (method !== 'GET') req.data = {};
      if (timeout !== undefined) req.timeout = timeout;
      try {
        runtime.request(req);
      } catch (e) {
        reject(apiError(NETWORK_ERRNO, 'request:fail ' + (e && e.message), { errMsg: String(e && e.message) }));
      }
    });
  }

  /** `send`, with the server's busy answer (721) retried after its retryAfterMs, at most twice. */
  function sendPatiently(path, method, data, token, retried) {
    const tries = retried || 0;
    return send(path, method, data, token).then(function (envelope) {
      if (envelope.errno !== BUSY_ERRNO || tries >= MAX_BUSY_RETRIES) return envelope;
      return delay(busyWait(envelope.data)).then(function () {
        return sendPatiently(path, method, data, token, tries + 1);
      });
    });
  }

  // ---- login ----

  /** A login code from `wx.login` or `wx.qy.login` (`name` says which, for the error). */
  function codeFrom(loginFn, name) {
    return new Promise(function (resolve, reject) {
      try {
        if (typeof loginFn !== 'function') throw new Error(name + ' is not available');
        loginFn({
          timeout: WX_LOGIN_TIMEOUT_MS,
          success: function (res) {
            if (res && typeof res.code === 'string' && res.code !== '') resolve(res.code);
            else reject(apiError(WX_LOGIN_ERRNO, name + ' gave no code', null));
          },
          fail: function (err) {
            const errMsg = (err && err.errMsg) || 'login:fail';
            reject(apiError(WX_LOGIN_ERRNO, errMsg, { errMsg: errMsg }));
          },
        });
      } catch (e) {
        reject(apiError(WX_LOGIN_ERRNO, 'login:fail ' + (e && e.message), null));
      }
    });
  }

  function wxLogin() {
    return codeFrom(runtime.login, 'wx.login');
  }

  function qyLogin() {
    return codeFrom(runtime.qy && runtime.qy.login, 'wx.qy.login');
  }

  /**
   * This mini-program's appid, so that a server serving several apps knows which one the code
   * is for; null on base libraries without `getAccountInfoSync` (the server then reads the
   * Referer, or uses its default app).
   */
  function ownAppid() {
    try {
      const info = runtime.getAccountInfoSync();
      const appid = info && info.miniProgram && info.miniProgram.appId;
      return typeof appid === 'string' && appid !== '' ? appid : null;
    } catch (e) {
      return null;
    }
  }

  /** Running inside WeCom (企业微信): logins go through the corp. */
  function insideWeCom() {
    try {
      const info = runtime.getSystemInfoSync();
      return !!info && info.environment === 'wxwork';
    } catch (e) {
      return false;
    }
  }

  /** Ends a session nobody holds any more (a login or refresh that finished after logout). */
  function endOrphan(token) {
    send('auth/logout', 'POST', {}, token).then(noop, noop);
  }

  /**
   * The one login in flight, or a new one. Resolves with the login's data: login_by_weixin's,
   * or inside WeCom login_by_wecom's (the same shape).
   */
  function startLogin(userInfo) {
    if (loginFlight) return loginFlight;
    const seq = ++loginSeq;
    const startEpoch = epoch;
    const wecom = insideWeCom();
    const endpoint = wecom ? 'auth/login_by_wecom' : 'auth/login_by_weixin';
    const flight = (wecom ? qyLogin() : wxLogin())
      .then(function (code) {
        const body = { code: code };
        const appid = ownAppid();
        if (appid) body.appid = appid;
        if (userInfo) body.userInfo = userInfo;
        // A busy answer comes before the code is exchanged, so the same code is sent again.
        return sendPatiently(endpoint, 'POST', body, null);
      })
      .then(unwrap)
      .then(function (data) {
        if (!data || typeof data.token !== 'string') {
          throw apiError(BAD_ANSWER_ERRNO, endpoint.slice(5) + ' answered no token', null);
        }
        if (epoch !== startEpoch) {
          endOrphan(data.token);
          throw apiError(UNLOGIN_ERRNO, '已退出登录', null);
        }
        const previous = storedToken();
        keepToken(data.token, data.tokenExpire);
        write(STORAGE_USER, data.userInfo);
        // An explicit login over a live session: one session per device, not two.
        if (previous && previous !== data.token) endOrphan(previous);
        return data;
      });
    loginFlight = flight.then(
      function (data) {
        loginFlight = null;
        return data;
      },
      function (error) {
        loginFlight = null;
        throw error;
      }
    );
    lastLogin = { seq: seq, promise: loginFlight };
    return loginFlight;
  }

  function tokenOrUnlogin() {
    const token = storedToken();
    if (token) return token;
    throw apiError(UNLOGIN_ERRNO, '请登录', null);
  }

  // ---- refresh ----

  /** Starts auth/refresh for `token` when it is due; the caller does not wait for it. */
  function renewIfDue(token) {
    if (refreshFlight || now() < refreshNotBefore || now() < renewAt(token)) return;
    const startEpoch = epoch;
    refreshFlight = sendPatiently('auth/refresh', 'POST', {}, token)
      .then(function (envelope) {
        const data = envelope.data;
        if (envelope.errno !== 0 || !data || typeof data.token !== 'string') {
          // 501: the token is dead, and the next call's 501 logs in again.
          refreshNotBefore = now() + REFRESH_BACKOFF_MS;
          return;
        }
        if (epoch !== startEpoch || storedToken() !== token) {
          // Logged out, or logged in again, meanwhile: nobody holds the new session.
          endOrphan(data.token);
          return;
        }
        keepToken(data.token, data.tokenExpire);
      })
      .then(null, function () {
        refreshNotBefore = now() + REFRESH_BACKOFF_MS;
      })
      .then(function () {
        refreshFlight = null;
      });
  }

  /** The token to send: the stored one (after a refresh in flight), else a login's. */
  function currentToken() {
    if (refreshFlight) {
      return refreshFlight.then(function () {
        return storedToken() || startLogin().then(tokenOrUnlogin);
      });
    }
    const token = storedToken();
    if (!token) return startLogin().then(tokenOrUnlogin);
    renewIfDue(token);
    return Promise.resolve(token);
  }

  /** After `dead` got 501: the token that replaces it, logging in at most once for all calls. */
  function replacementFor(dead, loginSeqAtSend) {
    const settled = refreshFlight || Promise.resolve();
    return settled.then(function () {
      const current = storedToken();
      if (current && current !== dead) return current;
      if (loginFlight) return loginFlight.then(tokenOrUnlogin);
      if (lastLogin && lastLogin.seq > loginSeqAtSend) return lastLogin.promise.then(tokenOrUnlogin);
      if (current === dead) forgetSession();
      return startLogin().then(tokenOrUnlogin);
    });
  }

  function authed(path, method, data) {
    const startEpoch = epoch;
    let resent = false;
    function sendWith(token) {
      const loginSeqAtSend = loginSeq;
      return sendPatiently(path, method, data, token).then(function (envelope) {
        if (tokenHeaderUnread(envelope)) {
          throw apiError(
            MISCONFIGURED_ERRNO,
            'wxauth: the server did not read the token sent in the ' + tokenHeader + ' header (reason: ' +
              envelope.data.reason + '): set createClient({ tokenHeader }) to the server\'s TOKEN_HEADER',
            envelope.data
          );
        }
        if (envelope.errno !== UNLOGIN_ERRNO || resent || epoch !== startEpoch) return unwrap(envelope);
        resent = true;
        return replacementFor(token, loginSeqAtSend).then(sendWith);
      });
    }
    return currentToken().then(sendWith);
  }

  // ---- the public API ----

  function request(path, requestOptions) {
    const ro = requestOptions || {};
    if (typeof path !== 'string' || path === '') {
      return Promise.reject(new TypeError('request: path is required, e.g. user/index'));
    }
    const method = String(ro.method || 'GET').toUpperCase();
    if (ro.auth === false) return sendPatiently(path, method, ro.data, null).then(unwrap);
    return authed(path, method, ro.data);
  }

  function login(loginOptions) {
    const lo = loginOptions || {};
    return startLogin(lo.userInfo);
  }

  function logout() {
    epoch += 1;
    const token = storedToken();
    forgetSession();
    if (!token) return Promise.resolve();
    return sendPatiently('auth/logout', 'POST', {}, token).then(function (envelope) {
      // 501: the session had already ended on the server.
      if (envelope.errno !== 0 && envelope.errno !== UNLOGIN_ERRNO) unwrap(envelope);
    });
  }

  function bindPhone(proof) {
    const p = proof || {};
    const body = p.code !== undefined ? { code: p.code } : { encryptedData: p.encryptedData, iv: p.iv };
    return request('auth/bindPhone', { method: 'POST', data: body }).then(function (data) {
      const user = read(STORAGE_USER);
      if (data && data.phone && user && typeof user === 'object') {
        write(STORAGE_USER, Object.assign({}, user, { phone: data.phone }));
      }
      return data;
    });
  }

  /**
   * Keeps what a link answered: the account's `userInfo`, and a `token` when the server handed
   * a new one (the session's account was merged into another).
   */
  function keepLinked(data) {
    if (data && typeof data.token === 'string' && data.token !== '') {
      const previous = storedToken();
      keepToken(data.token, data.tokenExpire);
      // One session per device, as after a login.
      if (previous && previous !== data.token) endOrphan(previous);
    }
    if (data && data.userInfo && typeof data.userInfo === 'object') {
      write(STORAGE_USER, data.userInfo);
    }
    return data;
  }

  /**
   * A session first, then the code: the code is only fetched once nothing else (a login) can
   * come between it and the link.
   */
  function loggedIn() {
    return storedToken() ? Promise.resolve() : startLogin();
  }

  function linkWeixin(linkOptions) {
    const lo = linkOptions || {};
    const appid = lo.appid || ownAppid();
    return loggedIn()
      .then(function () {
        return lo.code || wxLogin();
      })
      .then(function (c) {
        const body = { code: c };
        if (appid) body.appid = appid;
        return request('auth/link_weixin', { method: 'POST', data: body }).then(keepLinked);
      });
  }

  function linkWeCom(linkOptions) {
    const lo = linkOptions || {};
    return loggedIn()
      .then(function () {
        return lo.code || qyLogin();
      })
      .then(function (c) {
        return request('auth/link_wecom', { method: 'POST', data: { code: c } }).then(keepLinked);
      });
  }

  function deactivate() {
    return request('auth/deactivate', { method: 'POST' }).then(function (data) {
      epoch += 1;
      forgetSession();
      return data;
    });
  }

  function exportData() {
    return request('auth/export');
  }

  /**
   * Asks for consent to the meeting reminder (`wx.requestSubscribeMessage`, which the mini-program
   * allows only from a tap) and reports the answer to `meeting/subscribe`, declines included.
   */
  function subscribeReminder(meetingId, templateId) {
    if (typeof templateId !== 'string' || templateId === '') {
      return Promise.reject(new TypeError('subscribeReminder: templateId is required'));
    }
    if (typeof runtime.requestSubscribeMessage !== 'function') {
      return Promise.reject(apiError(WX_SUBSCRIBE_ERRNO, 'wx.requestSubscribeMessage is not available'));
    }
    return new Promise(function (resolve, reject) {
      runtime.requestSubscribeMessage({
        tmplIds: [templateId],
        success: function (res) {
          const result = res && res[templateId];
          if (typeof result !== 'string' || result === '') {
            reject(apiError(WX_SUBSCRIBE_ERRNO, 'no answer for template ' + templateId));
            return;
          }
          resolve(result);
        },
        fail: function (err) {
          const data = err && err.errCode !== undefined ? { errCode: err.errCode } : null;
          reject(apiError(WX_SUBSCRIBE_ERRNO, (err && err.errMsg) || 'requestSubscribeMessage:fail', data));
        },
      });
    }).then(function (result) {
      return request('meeting/subscribe', {
        method: 'POST',
        data: { id: meetingId, templateId: templateId, result: result },
      });
    });
  }

  function token() {
    return storedToken();
  }

  return {
    request: request,
    login: login,
    logout: logout,
    bindPhone: bindPhone,
    linkWeixin: linkWeixin,
    linkWeCom: linkWeCom,
    deactivate: deactivate,
    exportData: exportData,
    subscribeReminder: subscribeReminder,
    token: token,
  };
}

module.exports = {
  createClient: createClient,
  parseTokenExpire: parseTokenExpire,
  NETWORK_ERRNO: NETWORK_ERRNO,
  WX_LOGIN_ERRNO: WX_LOGIN_ERRNO,
  BAD_ANSWER_ERRNO: BAD_ANSWER_ERRNO,
  WX_SUBSCRIBE_ERRNO: WX_SUBSCRIBE_ERRNO,
};
