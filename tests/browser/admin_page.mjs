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

/** wx.login() for a test user through the dev fake, then the mini-program's login call. */
async function logIn(user) {
  const minted = await fetch(`${BASE_URL}/__wechat/fake/code?user=${user}`, { method: 'POST' });
  if (!minted.ok) throw new Error(`minting a code failed: HTTP ${minted.status}`);
  const { code, openid } = await minted.json();
  const res = await fetch(`${BASE_URL}/oapro/wx/auth/login_by_weixin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'wxauth-browser-test' },
    body: JSON.stringify({ code }),
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

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);

  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `nothing sticks out sideways at 375 px (overflow ${overflow} px)`);
  await page.screenshot({ path: PHONE_SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${PHONE_SCREENSHOT}`);

  check(problems.length === 0, `no errors in the page${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);

  await fragmentLogin();
  await firstLoadFails();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
