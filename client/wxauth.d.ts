// Types for wxauth.js, the mini-program side of wxauth.

/** The subset of the mini-program runtime (`wx`) the client uses. */
export interface WxRuntime {
  request(options: {
    url: string;
    method: string;
    header: Record<string, string>;
    data?: unknown;
    dataType?: 'json';
    timeout?: number;
    success(res: { statusCode: number; data: unknown; header?: Record<string, string> }): void;
    fail(err: { errMsg: string }): void;
  }): unknown;
  login(options: {
    timeout?: number;
    success(res: { code: string }): void;
    fail(err: { errMsg: string }): void;
  }): unknown;
  /** WeCom's additions, present when running inside WeCom. */
  qy?: {
    login(options: {
      timeout?: number;
      success(res: { code: string }): void;
      fail(err: { errMsg: string }): void;
    }): unknown;
  };
  /** The appid sent on login comes from here (base library 2.2.2+). */
  getAccountInfoSync?(): { miniProgram: { appId: string } };
  /** `environment: 'wxwork'` inside WeCom: logins then go through `wx.qy.login`. */
  getSystemInfoSync?(): { environment?: string };
  getStorageSync(key: string): any;
  setStorageSync(key: string, value: unknown): void;
  removeStorageSync(key: string): void;
}

export interface ClientOptions {
  /** The API root, e.g. `https://example.com/oapro/wx`. */
  apiRoot: string;
  /** The mini-program runtime; defaults to the global `wx`. */
  wx?: WxRuntime;
  /** The server's `TOKEN_HEADER`; defaults to `X-OA-Token`. */
  tokenHeader?: string;
  /** `wx.request`'s timeout in ms; defaults to app.json's `networkTimeout`. */
  timeout?: number;
  /** The clock in ms since the epoch; defaults to `Date.now` (tests move it). */
  now?: () => number;
}

export interface RequestOptions {
  /** Defaults to `GET`. */
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | string;
  /** A JSON body, or for GET the query parameters (as `wx.request` sends them). */
  data?: unknown;
  /** Defaults to true: send the token, logging in first when there is none. */
  auth?: boolean;
}

/**
 * How every call rejects. `errno` is the server's errno (401, 402, 501, 7xx, ...), or one of the
 * client's own: -1 network failure (`wx.request` failed), -2 `wx.login` (or inside WeCom
 * `wx.qy.login`) failed or is missing, -3 the server answered something that is not the envelope
 * (e.g. a proxy's error page), -4 the server did not read the token where the client sent it
 * (`tokenHeader` is not the server's `TOKEN_HEADER`; the server's 501 `data`, with its `reason`,
 * is in `data`): rejected at once, never logged in again; -5 `wx.requestSubscribeMessage` failed
 * or gave no answer for the template.
 */
export interface WxAuthError extends Error {
  errno: number;
  errmsg: string;
  data: any;
}

export interface UserInfo {
  nickName: string;
  avatarUrl: string;
  gender: number;
  userId: number;
  phone?: string;
  registerDate: string;
  status: number;
  userLevel: number;
  userLevelDesc: string;
  /** Inside WeCom (a WeCom login or link): the corp the person is staff of. */
  corpId?: string;
  /** With `corpId`: the person's WeCom userid there (not the account's `userId`). */
  corpUserId?: string;
}

export interface LoginAnswer {
  token: string;
  /** `yyyy-MM-dd HH:mm:ss`, China Standard Time. */
  tokenExpire: string;
  userInfo: UserInfo;
}

export interface LoginProfile {
  nickName?: string;
  avatarUrl?: string;
  gender?: 0 | 1 | 2;
}

export interface Client {
  /** Resolves with the envelope's `data` when errno is 0; otherwise rejects with a WxAuthError. */
  request<T = any>(path: string, options?: RequestOptions): Promise<T>;
  /**
   * `wx.login()` then `auth/login_by_weixin` with the code and this mini-program's appid; inside
   * WeCom `wx.qy.login()` then `auth/login_by_wecom` (same answer). Shares a login already in
   * flight. A session this client held before is ended on the server.
   */
  login(options?: { userInfo?: LoginProfile }): Promise<LoginAnswer>;
  /**
   * Attaches a WeChat identity to the account: `POST auth/link_weixin {code, appid}`, with a
   * fresh `wx.login()` code and this mini-program's appid unless given (a code from another
   * mini-program, with that one's appid). Logs in first when there is no session. A `userInfo`
   * in the answer is stored, and a `token` replaces the stored one.
   */
  linkWeixin(options?: { code?: string; appid?: string }): Promise<any>;
  /**
   * Attaches the WeCom identity to the account: `POST auth/link_wecom {code}` with a
   * `wx.qy.login()` code unless given. The answer is kept as `linkWeixin`'s.
   */
  linkWeCom(options?: { code?: string }): Promise<any>;
  /** Ends the session on the server and forgets the token and user locally. */
  logout(): Promise<void>;
  /** The getPhoneNumber button's result; the stored `userInfo` gets the phone. */
  bindPhone(proof: { code: string } | { encryptedData: string; iv: string }): Promise<{ phone: string }>;
  /** `POST auth/deactivate`; forgets the token and user locally when it succeeds. */
  deactivate(): Promise<any>;
  /** `GET auth/export`: what the server holds about the user. */
  exportData(): Promise<any>;
  /**
   * `wx.requestSubscribeMessage({ tmplIds: [templateId] })` (call it from a tap), then reports
   * the answer to `meeting/subscribe` for a joined meeting. Rejects with `WX_SUBSCRIBE_ERRNO`
   * when WeChat gives no answer.
   */
  subscribeReminder(meetingId: number, templateId: string): Promise<ReminderSubscription>;
  /** The stored token, or null. */
  token(): string | null;
}

/** `meeting/subscribe`'s answer. */
export interface ReminderSubscription {
  id: number;
  templateId: string;
  /** Whether a reminder for the meeting will be (or was) sent. */
  subscribed: boolean;
}

export function createClient(options: ClientOptions): Client;

/** `tokenExpire` (China Standard Time) as ms since the epoch, or null. */
export function parseTokenExpire(text: string): number | null;

export const NETWORK_ERRNO: -1;
export const WX_LOGIN_ERRNO: -2;
export const BAD_ANSWER_ERRNO: -3;
export const WX_SUBSCRIBE_ERRNO: -5;
