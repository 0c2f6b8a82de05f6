// The admin status page in headless Chromium, against a running wxauth in dev mode.
// scripts/browser-test starts the server and sets:
//   BASE_URL      e.g. http://127.0.0.1:43210
//   ADMIN_TOKEN   the server's admin token
//   SCREENSHOT    where to save the desktop screenshot (a phone-sized one goes beside it)
//   CHROMIUM      the browser binary (default /usr/bin/chromium)
// Exits non-zero on the first failed check.

import { chromium } from 'playwright-core';

const BASE_URL = required('BASE_URL');
const ADMIN_TOKEN = required('ADMIN_TOKEN');
const SCREENSHOT = process.env.SCREENSHOT || 'admin-page.png';
const PHONE_SCREENSHOT = SCREENSHOT.replace(/\.png$/, '') + '-phone.png';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Longer than one refresh period of the page (5 s), so an auto-refresh must happen in time.
const WAIT_MS = 15000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`admin_page: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
  console.log(`ok - ${message}`);
}

/** wx.login() for a test user through the dev fake, in the default app or `appid`. */
async function mintCode(user, appid) {
  const app = appid ? `&appid=${encodeURIComponent(appid)}` : '';
  const minted = await fetch(`${BASE_URL}/__wechat/fake/code?user=${user}${app}`, { method: 'POST' });
  if (!minted.ok) throw new Error(`minting a code failed: HTTP ${minted.status}`);
  return minted.json();
}

/** wx.login() for a test user, then the mini-program's login call (naming `appid` when given). */
async function logIn(user, appid) {
  const { code, openid } = await mintCode(user, appid);
  const res = await fetch(`${BASE_URL}/oapro/wx/auth/login_by_weixin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'wxauth-browser-test' },
    body: JSON.stringify(appid ? { code, appid } : { code }),
  });
  const body = await res.json();
  if (body.errno !== 0) throw new Error(`login failed: ${JSON.stringify(body)}`);
  return { openid, userId: body.data.userInfo.userId, token: body.data.token };
}

/** A login with a code WeChat never issued: errno 710. */
async function failLogin() {
  const res = await fetch(`${BASE_URL}/oapro/wx/auth/login_by_weixin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'wxauth-browser-test' },
    body: JSON.stringify({ code: '0never-issued' }),
  });
  const body = await res.json();
  if (body.errno !== 710) throw new Error(`expected errno 710: ${JSON.stringify(body)}`);
}

/** The status JSON as the page gets it. */
async function statusJson() {
  const res = await fetch(`${BASE_URL}/admin/api/status`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  if (!res.ok) throw new Error(`status call failed: HTTP ${res.status}`);
  return res.json();
}

/**
 * A tab that holds the token is opened while the status API fails: first an HTTP 503, then no
 * connection at all. The banner must say so at once (no dashboard exists yet to hold it), the
 * page must retry every 5 s on its own, and the dashboard must appear once the server answers.
 */
async function firstLoadFails() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    await context.addInitScript((t) => sessionStorage.setItem('wxauth.adminToken', t), ADMIN_TOKEN);
    const page = await context.newPage();
    // The failed calls make Chromium log them as console errors: only script errors count here.
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const attempts = [];
    await page.route('**/admin/api/status', (route) => {
      attempts.push(Date.now());
      if (attempts.length === 1) return route.fulfill({ status: 503, body: 'unavailable' });
      if (attempts.length === 2) return route.abort('connectionrefused');
      return route.continue();
    });
    await page.goto(`${BASE_URL}/admin/`);
    const banner = page.locator('#connection');
    await banner.waitFor({ state: 'visible', timeout: WAIT_MS });
    const first = await banner.textContent();
    check(/HTTP 503/.test(first) && /retrying every 5 s/.test(first),
      `a failed first load shows the banner: "${first}"`);
    check(await page.locator('#dashboard').isHidden() && await page.locator('#signin').isHidden(),
      'nothing else is shown before the first answer');
    await page.waitForFunction(() => /Cannot reach the server/.test(document.getElementById('connection').textContent),
      null, { timeout: WAIT_MS });
    check(await banner.isVisible(), 'the retry ran on its own; an unreachable server shows in the banner');
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: WAIT_MS });
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('sessions-live').textContent),
      null, { timeout: WAIT_MS });
    check(await banner.isHidden(), 'once the server answers the dashboard shows and the banner goes');
    const gaps = attempts.slice(1, 3).map((t, i) => t - attempts[i]);
    check(attempts.length >= 3 && gaps.every((g) => g >= 4500 && g <= 9000),
      `retried every 5 s (gaps ${gaps.join(', ')} ms)`);
    check(problems.length === 0, `no script errors${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);
  } finally {
    await context.close();
  }
}

/**
 * The dev-mode banner's link, `/admin/#token=...`: the page opens signed in, the token leaves the
 * address bar and the history entry, and no request carries it (a fragment is never sent).
 */
async function fragmentLogin() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await context.newPage();
    const sent = [];
    page.on('request', (r) => sent.push(r.url()));
    await page.goto(`${BASE_URL}/admin/#token=${encodeURIComponent(ADMIN_TOKEN)}`);
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: WAIT_MS });
    check(await page.locator('#signin').isHidden(), 'the banner\'s link opens the page signed in');
    check(page.url() === `${BASE_URL}/admin/` && await page.evaluate(() => location.hash === ''),
      `the token is gone from the address bar: ${page.url()}`);
    check(await page.evaluate(() => history.length === 1 || !String(history.state || '').includes('token')),
      'the history entry was replaced, not added');
    check(sent.every((u) => !u.includes(ADMIN_TOKEN) && !u.includes('token=')),
      `no request carried the token (${sent.length} requests)`);
    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: WAIT_MS });
    check(page.url() === `${BASE_URL}/admin/`, 'a reload stays signed in (sessionStorage) without the token in the URL');
  } finally {
    await context.close();
  }
}

/** Each app row of a per-app table: its appid, then the text of each cell. */
function appRows(page, table) {
  return page.evaluate((id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => ({
    appid: tr.dataset.appid,
    cells: [...tr.children].map((c) => c.textContent),
  })), table);
}

/**
 * The status JSON once the logins of the per-app step are written (login_log rows are written
 * in batches) and the merge is counted.
 */
async function settledStatus() {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const s = await statusJson();
    const shop = s.logins && s.logins.by_app[1];
    if (shop && shop.success >= 1 && s.accounts_merged === 1 && s.database.login_log_pending_writes === 0) {
      return s;
    }
    if (Date.now() > deadline) throw new Error(`the per-app logins never showed: ${JSON.stringify(s.logins && s.logins.by_app)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * App names come from the server's configuration, but the page treats them like everything the
 * server sends: as text. The status answer is rewritten on its way to the page with markup in
 * every app's name and one app's WeChat client not answering.
 */
async function appNamesAreText() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  try {
    await context.addInitScript((t) => sessionStorage.setItem('wxauth.adminToken', t), ADMIN_TOKEN);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const hostile = '<img src=x onerror="window.__injected=1"><b class="injected">OA</b>';
    await page.route('**/admin/api/status', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      for (const app of [...body.logins.by_app, ...body.wechat.by_app]) app.name = hostile;
      body.wechat.by_app[1] = { appid: body.wechat.by_app[1].appid, name: hostile, answered: false };
      await route.fulfill({ response, json: body });
    });
    await page.goto(`${BASE_URL}/admin/`);
    await page.locator('#wx-apps tbody tr[data-appid]').nth(1).waitFor({ timeout: WAIT_MS });
    const shown = await page.evaluate(() => ({
      injected: document.querySelectorAll('.injected, #login-apps img, #wx-apps img').length,
      ran: window.__injected === 1,
      names: [...document.querySelectorAll('#login-apps tbody th, #wx-apps tbody th')].map((th) => th.textContent),
    }));
    check(shown.injected === 0 && !shown.ran && shown.names.length === 4 &&
      shown.names.every((n) => n.startsWith(hostile)),
    'markup in an app\'s name is shown as text, never made into elements');
    const wxRows = await appRows(page, 'wx-apps');
    check(wxRows[1].cells[1] === 'no answer' && /^\d+$/.test(wxRows[0].cells[1]),
      `an app whose WeChat client did not answer says so in its row: ${JSON.stringify(wxRows.map((r) => r.cells.slice(1)))}`);
    check(problems.length === 0, `no script errors${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);
  } finally {
    await context.close();
  }
}

function masked(openid) {
  return openid.length <= 8 ? '****' : `${openid.slice(0, 4)}****${openid.slice(-4)}`;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  // The wrong-token step makes Chromium log the refused status call; nothing else may.
  let refusalExpected = false;
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (refusalExpected && /status of 403/.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  // The page must need nothing but its own server (no CDN: the machine may be offline).
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE_URL) && !r.url().startsWith('data:')) {
      problems.push(`request outside the server: ${r.url()}`);
    }
  });

  const response = await page.goto(`${BASE_URL}/admin`);
  check(response.ok(), 'the page loads from /admin');
  check(new URL(page.url()).pathname === '/admin/', '/admin redirects to /admin/');
  await page.locator('#signin').waitFor({ state: 'visible' });
  check(true, 'the page asks for the admin token');

  refusalExpected = true;
  await page.fill('#token', 'not-the-admin-token');
  await page.click('#token-form button[type=submit]');
  const error = page.locator('#signin-error');
  await error.waitFor({ state: 'visible', timeout: WAIT_MS });
  refusalExpected = false;
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '') + '-signin.png' });
  const errorText = await error.textContent();
  check(/wrong admin token/i.test(errorText), `a wrong token says so: "${errorText}"`);
  check(await page.locator('#dashboard').isHidden(), 'a wrong token shows no numbers');

  await page.fill('#token', ADMIN_TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.locator('#dashboard').waitFor({ state: 'visible', timeout: WAIT_MS });
  const live = page.locator('#sessions-live');
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('sessions-live').textContent),
    null, { timeout: WAIT_MS });
  const before = Number(await live.textContent());
  check(before === 0, `the session count shows ${before} on a fresh server`);
  const deletions = await page.evaluate(() => ['pending', 'completed'].map(
    (k) => document.querySelector(`[data-field="deletions-${k}"]`).textContent));
  check(deletions[0] === '0' && deletions[1] === '0',
    `account deletions show 0 pending, 0 completed on a fresh server: ${deletions.join(', ')}`);
  check(await page.evaluate(() => sessionStorage.getItem('wxauth.adminToken')) === ADMIN_TOKEN,
    'the token is kept in sessionStorage');
  check(await page.evaluate(() => localStorage.length === 0), 'nothing is kept in localStorage');

  const alice = await logIn('alice');
  console.log(`logged alice in through the API as user ${alice.userId}`);
  await failLogin();
  console.log('one login with a bad code (errno 710)');

  // No click: the page refreshes on its own.
  await page.waitForFunction((n) => document.getElementById('sessions-live').textContent === String(n),
    before + 1, { timeout: WAIT_MS });
  check(true, `the session count goes up to ${before + 1} without a reload`);
  const row = page.locator('#recent tbody tr', { hasText: masked(alice.openid) });
  await row.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  const rowText = await row.first().innerText();
  check(rowText.includes(String(alice.userId)) && /\bok\b/.test(rowText),
    `the login appears in the recent list: "${rowText.replace(/\s+/g, ' ')}"`);
  check(Number(await page.locator('#logins-minute-ok').textContent()) >= 1,
    'the last minute counts the login');
  await page.locator('#login-errnos', { hasText: '710' }).waitFor({ timeout: WAIT_MS });
  const label = (await statusJson()).errnos['710'];
  const errnoRows = await page.locator('#login-errnos').innerText();
  check(Boolean(label) && errnoRows.includes(`710 ${label}`),
    `the failed login shows under its errno, labelled by the server: "${errnoRows.replace(/\s+/g, ' ')}"`);
  const html = await page.content();
  check(!html.includes(alice.openid), 'the full openid is not on the page');
  check(!html.includes(alice.token) && !html.includes(ADMIN_TOKEN), 'no token is on the page');
  const badge = await page.locator('#overall').textContent();
  check(badge === 'OK', `the overall status is ${badge}`);

  // The bad code (WeChat's 40029) is the user's, not a WeChat fault: counted apart, not red.
  await page.waitForFunction(() => /bad user code/.test(
    document.querySelector('[data-field="wx-hour"]').textContent), null, { timeout: WAIT_MS });
  const wx = await page.evaluate(() => Object.fromEntries(['wx-hour', 'wx-rate', 'wx-outcome'].map((f) => {
    const dd = document.querySelector(`[data-field="${f}"]`);
    return [f, { text: dd.textContent, cls: dd.className }];
  })));
  check(/0 WeChat faults/.test(wx['wx-hour'].text) && /1 bad user code\b/.test(wx['wx-hour'].text),
    `the WeChat card counts the bad code apart from faults: "${wx['wx-hour'].text}"`);
  check(wx['wx-rate'].text === '0.0 %' && !/bad|warn/.test(wx['wx-rate'].cls),
    `the fault rate is 0 and not red: "${wx['wx-rate'].text}" (${wx['wx-rate'].cls})`);
  check(!/\bbad\b/.test(wx['wx-outcome'].cls), `the newest outcome (a user's code) is not red: ${wx['wx-outcome'].text}`);
  const wxErrors = await page.locator('#wx-errors').innerText();
  check(/40029 invalid code \(user\)/.test(wxErrors), `40029 is listed as the user's: "${wxErrors.replace(/\s+/g, ' ')}"`);
  // A meeting WeChat's content check (the dev fake's word list) wants reviewed: listed with
  // approve and reject; approving shows it in meeting/list.
  const start = new Date(Date.now() + 3 * 3600 * 1000);
  const published = await (await fetch(`${BASE_URL}/oapro/wx/meeting/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-OA-Token': alice.token },
    body: JSON.stringify({
      title: '待审的会议', content: '内容 fake-review', location: '305',
      startTime: start.toISOString(), endTime: new Date(start.getTime() + 3600e3).toISOString(),
    }),
  })).json();
  check(published.errno === 0 && published.data.review === 'pending',
    `a meeting for review is stored pending: ${JSON.stringify(published).slice(0, 120)}`);
  const pendingRow = page.locator('#pending tbody tr', { hasText: '待审的会议' });
  await pendingRow.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  check(true, 'the pending meeting is listed on the page');
  await pendingRow.first().locator('button[data-decision=approve]').click();
  await pendingRow.first().waitFor({ state: 'detached', timeout: WAIT_MS });
  const listed = await (await fetch(`${BASE_URL}/oapro/wx/meeting/list?limit=100`)).json();
  check(listed.data.list.some((m) => m.id === published.data.id),
    'approving it from the page shows it in meeting/list');
  check((await statusJson()).pending_review.length === 0, 'nothing is pending any more');

  // Per app. Dev mode serves two demo mini-programs, the default first. Bob logs in to the
  // second (an account of his own), then Alice links Bob's identity there to her account by
  // hand, which merges his account into hers: one merge.
  const apps = (await statusJson()).logins.by_app;
  check(apps.length === 2 && apps.every((a) => a.name && a.appid),
    `the status lists both demo apps with their names: ${apps.map((a) => a.name + ' ' + a.appid).join(', ')}`);
  const bob = await logIn('bob', apps[1].appid);
  check(bob.userId !== alice.userId, `Bob has an account of his own (${bob.userId}) in ${apps[1].name}`);
  const linked = await (await fetch(`${BASE_URL}/oapro/wx/auth/link_weixin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-OA-Token': alice.token },
    body: JSON.stringify({ code: (await mintCode('bob', apps[1].appid)).code, appid: apps[1].appid }),
  })).json();
  check(linked.errno === 0 && linked.data.userInfo.userId === alice.userId,
    `the link merges Bob's account into Alice's: ${JSON.stringify(linked).slice(0, 120)}`);
  const settled = await settledStatus();
  await page.waitForFunction(() => document.querySelector('[data-field="accounts-merged"]').textContent === '1',
    null, { timeout: WAIT_MS });
  check(true, 'the merged count shows 1 without a reload');
  // The page refreshes every 5 s: wait until it draws what the status says now.
  const expectLogins = settled.logins.by_app.map((a) => [String(a.success), String(a.failure)]);
  const expectWeChat = settled.wechat.by_app.map((a) => [
    String(a.last_hour.calls), String(a.last_hour_faults), String(a.last_hour_user_errors)]);
  await page.waitForFunction(([logins, wechat]) => {
    const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)]
      .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));
    return JSON.stringify(rows('login-apps')) === JSON.stringify(logins) &&
      JSON.stringify(rows('wx-apps')) === JSON.stringify(wechat);
  }, [expectLogins, expectWeChat], { timeout: WAIT_MS });
  const loginRows = await appRows(page, 'login-apps');
  const wxRows = await appRows(page, 'wx-apps');
  for (const [i, app] of settled.logins.by_app.entries()) {
    for (const [rows, what] of [[loginRows, 'logins'], [wxRows, 'WeChat calls']]) {
      const row = rows[i];
      check(row.appid === app.appid && row.cells[0] === app.name + app.appid,
        `${what}: the row of ${app.appid} is named ${app.name}: ${row.cells.join(' | ')}`);
    }
  }
  check(settled.logins.by_app[0].success >= 1 && settled.logins.by_app[0].failure === 1 &&
    settled.logins.by_app[1].success >= 1,
  `Alice's login and the bad code count in the first app, Bob's in the second: ${loginRows.map((r) => r.cells.join(' ')).join('; ')}`);
  check(settled.wechat.by_app[1].last_hour.calls === 2 && settled.wechat.by_app[0].last_hour_user_errors === 1,
    `the WeChat calls are split by app: ${wxRows.map((r) => r.cells.join(' ')).join('; ')}`);

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);

  for (const width of [390, 375]) {
    await page.setViewportSize({ width, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `nothing sticks out sideways at ${width} px (overflow ${overflow} px)`);
    // The per-app tables stay inside their cards, every row on screen and no name cut off.
    const fit = await page.evaluate(() => ['login-apps', 'wx-apps'].map((id) => {
      const table = document.getElementById(id);
      const card = table.closest('.card').getBoundingClientRect();
      const box = table.getBoundingClientRect();
      const rows = [...table.querySelectorAll('tbody tr')];
      return {
        id,
        inside: box.left >= card.left && box.right <= card.right + 0.5,
        rows: rows.length,
        visible: rows.every((tr) => tr.getBoundingClientRect().height > 0),
        clipped: [...table.querySelectorAll('tbody th')].some((th) => th.scrollWidth > th.clientWidth + 1),
      };
    }));
    check(fit.every((t) => t.inside && t.rows === 2 && t.visible && !t.clipped),
      `at ${width} px the per-app rows fit their cards: ${JSON.stringify(fit)}`);
    if (width === 390) {
      await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '') + '-390.png', fullPage: true });
    }
  }
  await page.screenshot({ path: PHONE_SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${PHONE_SCREENSHOT}`);

  check(problems.length === 0, `no errors in the page${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);

  await fragmentLogin();
  await firstLoadFails();
  await appNamesAreText();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
