// The API page at /docs in headless Chromium, against a running wxauth.
// scripts/browser-test starts the server and sets:
//   BASE_URL      e.g. http://127.0.0.1:43210
//   SCREENSHOT    where to save the screenshot
//   CHROMIUM      the browser binary (default /usr/bin/chromium)
// Exits non-zero on the first failed check.

import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL;
if (!BASE_URL) {
  console.error('docs_page: BASE_URL is not set');
  process.exit(2);
}
const SCREENSHOT = process.env.SCREENSHOT || 'docs-page.png';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
  console.log(`ok - ${message}`);
}

const doc = await (await fetch(`${BASE_URL}/openapi.json`)).json();
const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.keys(item).map((method) => ({ path, method, op: item[method] })));

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
  // A CSP violation is reported as a console error: none may happen.
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(BASE_URL) && !r.url().startsWith('data:')) {
      problems.push(`request outside the server: ${r.url()}`);
    }
  });

  const response = await page.goto(`${BASE_URL}/docs`);
  check(response.ok(), 'the page loads from /docs');
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"),
    `the page is served with the strict CSP: ${csp}`);
  await page.waitForFunction((n) => document.querySelectorAll('section.op').length === n,
    operations.length, { timeout: WAIT_MS });
  check(true, `one card per operation (${operations.length})`);

  const header = await page.locator('#token-header').textContent();
  check(header === doc.components.securitySchemes.token.name, `the token header is shown: ${header}`);
  check(header === 'X-OA-Token', `the token header is shown as configured, not lower-cased: ${header}`);

  // The descriptions' Markdown is rendered: `code` becomes <code>, no backtick is left.
  const prose = await page.locator('main').innerText();
  check(!prose.includes('`'), 'no literal backtick on the page (Markdown rendered)');
  check(await page.locator('#description code').count() > 0 ||
    !(doc.info.description || '').includes('`'), 'the description\'s `code` is a <code> element');
  // Field descriptions with `code` in the document show it as <code> in the notes column.
  check(JSON.stringify(doc.components.schemas).includes('`'), 'the document\'s field descriptions hold Markdown code');
  const notesCode = await page.locator('section.op tbody td:not(.field) code').allInnerTexts();
  check(notesCode.includes('wx.login()'), `field notes show \`wx.login()\` as code (${notesCode.length} code spans)`);

  // A required field is never null in a request that passes: its type says so.
  const requiredRows = await page.$$eval('section.op tbody tr', (rows) => rows
    .map((r) => Array.from(r.cells).map((c) => c.innerText.trim()))
    .filter((cells) => cells.length === 4 && cells[2] === 'yes'));
  check(requiredRows.length > 0, `required fields are listed (${requiredRows.length})`);
  const nullable = requiredRows.filter((cells) => /\bnull\b/.test(cells[1]));
  check(nullable.length === 0, `no required field is shown as nullable${nullable.length ? ': ' + nullable.map((c) => c[0]).join(', ') : ''}`);
  const code = await page.$$eval('section.op[id="auth_login_by_weixin"] tbody tr', (rows) => rows
    .map((r) => Array.from(r.cells).map((c) => c.innerText.trim()))
    .find((cells) => cells[0] === 'code'));
  check(code && code[1] === 'string' && code[2] === 'yes', `login's code is a required string: ${code}`);

  for (const { path, method, op } of operations) {
    const card = page.locator(`section.op[id="${op.operationId}"]`);
    const text = await card.innerText();
    check(text.includes(doc.servers[0].url + path) && text.toUpperCase().includes(method.toUpperCase()),
      `${method.toUpperCase()} ${path} has its card`);
    const secured = (op.security || []).length > 0;
    check((await card.locator('.badge', { hasText: 'token' }).count()) === (secured ? 1 : 0),
      `${path}: the token badge is ${secured ? 'shown' : 'absent'}`);
    const errnos = op.responses['200'].content['application/json'].schema.oneOf
      .filter((v) => v.title !== 'success')
      .flatMap((v) => v.properties.errno.enum);
    const shown = await card.locator('table.errnos tbody tr td:first-child').allInnerTexts();
    check(errnos.every((n) => shown.includes(String(n))) && shown.length === errnos.length,
      `${path}: lists its errnos ${errnos.join(', ')}`);
  }
  const login = await page.locator('section.op[id="auth_login_by_weixin"]').innerText();
  check(/code/.test(login) && /max length 128/.test(login), 'the login body shows code with its bound');
  const list = await page.locator('section.op[id="meeting_list"]').innerText();
  check(/limit/.test(list) && /≤ 100/.test(list), 'meeting/list shows limit with its bound');

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);

  for (const width of [390, 375]) {
    await page.setViewportSize({ width, height: 812 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `nothing sticks out sideways at ${width} px (overflow ${overflow} px)`);
    // A field name on two lines has been broken mid-word: each must be one line box.
    const broken = await page.$$eval('td.field code', (codes) => codes
      .filter((c) => c.getClientRects().length !== 1 ||
        c.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(c).lineHeight))
      .map((c) => c.textContent));
    check(broken.length === 0, `no field name is broken at ${width} px${broken.length ? ': ' + broken.join(', ') : ''}`);
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-390.png'), fullPage: true });

  check(problems.length === 0, `no errors in the page${problems.length ? ':\n  ' + problems.join('\n  ') : ''}`);
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
