// test_admin_browser.mjs - the admin dashboard (issue 8) in headless Debian
// chromium, driven by playwright-core, against the real `echobot serve`.
//
// The instance is seeded first (`echobot db seed`: 400 users and 4,000
// messages over 40 days) and an admin is made from the shell (`echobot user
// create --admin`). The admin logs in through the real form, opens /admin and
// the page must show the totals and three charts, each image loaded and
// drawn: the test paints each chart into a canvas and counts the pixels of
// the bars' colour. The screenshot of the whole page is saved as
// tests/artifacts/admin-dashboard.png for a person to look at (and the users
// list as admin-users.png). No console errors, failed requests or CSP
// violations; the server must exit 0 on SIGTERM (LeakSanitizer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ECHOBOT = path.resolve(ROOT, process.env.ECHOBOT || 'build/test/src/app/echobot');
const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
const WAIT = 90000;
const PASSWORD = 'password123';

let tmp, browser, srv;

function chromiumPath() {
  for (const p of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('chromium is not installed (scripts/bootstrap.sh test installs it)');
}

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

function cleanEnv() {
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('ECHO_') && k !== 'SECRET_KEY'));
  return Object.assign(env, { ECHO_ENV: 'development', ECHO_LOG_LEVEL: 'info',
    ECHO_ACCESS_LOG: '0', ECHO_ANTIBOT_MIN_MS: '0', ECHO_RATELIMIT_ENABLED: '0' });
}

function echobot(args, input) {
  const r = spawnSync(ECHOBOT, args, { cwd: ROOT, env: cleanEnv(), input, encoding: 'utf8' });
  assert.equal(r.status, 0, `echobot ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'echo-admin-browser-'));
  const instance = path.join(tmp, 'instance');
  await mkdir(instance, { recursive: true });
  const database = path.join(instance, 'echo.db');
  echobot(['db', 'seed', '--users', '400', '--messages', '4000', '--days', '40', '--batch',
    '10000', '--prefix', 'seeded_', '--database', database]);
  echobot(['user', 'create', '--username', 'chief', '--email', 'chief@example.com', '--admin',
    '--database', database], `${PASSWORD}\n`);

  const port = await freePort();
  const proc = spawn(ECHOBOT, ['serve', '--host', '127.0.0.1', '--port', String(port),
    '--instance', instance], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  srv = { base: `http://127.0.0.1:${port}`, proc, log: '', code: undefined };
  proc.stdout.on('data', (d) => { srv.log += d; });
  proc.stderr.on('data', (d) => { srv.log += d; });
  srv.exited = new Promise((ok) => proc.on('exit', (code, signal) => {
    srv.code = code === null ? signal : code;
    ok(srv.code);
  }));
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (srv.code !== undefined) throw new Error(`echobot exited with ${srv.code}:\n${srv.log}`);
    try {
      if ((await fetch(`${srv.base}/healthz`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`echobot did not become healthy:\n${srv.log}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  browser = await chromium.launch({ executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) {
    if (srv.code === undefined) srv.proc.kill('SIGTERM');
    const timer = setTimeout(() => srv.proc.kill('SIGKILL'), WAIT);
    await srv.exited;
    clearTimeout(timer);
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
  if (srv) assert.equal(srv.code, 0, `echobot exited with ${srv.code}:\n${srv.log.slice(-6000)}`);
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`); });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.problems = async () =>
    problems.concat((await page.evaluate(() => window.__csp)).map((v) => `csp: ${v}`));
  return page;
}

test('an admin sees the dashboard with its charts drawn', { timeout: 5 * WAIT }, async () => {
  const page = await newPage();
  await page.goto(`${srv.base}/login`);
  await page.fill('input[name="username"]', 'chief');
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([
    page.waitForURL(`${srv.base}/`, { timeout: WAIT }),
    page.click('form[action="/login"] button[type="submit"]'),
  ]);
  await page.click('a.nav-link[href="/admin"]');
  await page.waitForURL(`${srv.base}/admin`, { timeout: WAIT });
  assert.equal(await page.textContent('#total-users'), '401');
  assert.equal(await page.textContent('#total-messages'), '4000');

  // Every chart image loaded and is drawn: paint it into a canvas and count
  // the pixels of the bars' / line's blue (#4878d0, seaborn muted's first colour).
  await page.waitForFunction(() => {
    const imgs = Array.from(document.querySelectorAll('img.chart-img'));
    return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: WAIT });
  const charts = await page.evaluate(() => Array.from(document.querySelectorAll('img.chart-img'))
    .map((img) => {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let blue = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - 0x48) < 24 && Math.abs(d[i + 1] - 0x78) < 24 &&
            Math.abs(d[i + 2] - 0xd0) < 24) blue++;
      }
      const r = img.getBoundingClientRect();
      const card = img.closest('figure').getBoundingClientRect();
      return { src: img.getAttribute('src'), alt: img.alt, w: c.width, h: c.height, blue,
        visible: r.width > 200 && r.height > 100, fill: r.width / card.width };
    }));
  for (const c of charts) {
    assert.ok(c.visible, `${c.src} is not shown`);
    // The chart spans its card (less the card's padding), not 60% of it.
    assert.ok(c.fill > 0.9, `${c.src} fills ${Math.round(c.fill * 100)}% of its card`);
    assert.ok(c.w >= 600 && c.h >= 300, `${c.src} is ${c.w}x${c.h}`);
    assert.ok(c.blue > 500, `${c.src}: only ${c.blue} pixels of data colour`);
    assert.match(c.alt, /\d/, 'the text alternative names figures');
  }

  // The signups chart has one point per day of the default 30-day range.
  const points = await page.evaluate(async () => {
    const svg = await (await fetch(document.querySelector('#chart-signups img').src)).text();
    return (svg.match(/class="pt"/g) || []).length;
  });
  assert.equal(points, 30);

  const shot = path.join(ARTIFACTS, 'admin-dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok((await stat(shot)).size > 20000, 'the screenshot is suspiciously small');

  // The users list, sorted by signup date.
  await page.click('.admin-menu a[href="/admin/users"]');
  await page.waitForSelector('table.admin-table tbody tr');
  await page.click('th a[href*="sort=created_at"]');
  await page.waitForURL(/sort=created_at/);
  assert.equal(await page.locator('table.admin-table tbody tr').count(), 25);
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-users.png'), fullPage: true });
  // Ascending first: the oldest seeded signup leads.
  assert.equal(await page.getAttribute('th[aria-sort]', 'aria-sort'), 'ascending');

  // Deactivate the first user: the audit log shows what changed.
  await page.click('table.admin-table tbody tr:first-child form[action$="/deactivate"] button');
  await page.waitForSelector('.flash-text');
  await page.click('.admin-menu a[href="/admin/audit"]');
  await page.waitForSelector('table.admin-table tbody tr');
  assert.equal((await page.textContent('tbody tr:first-child td.col-changes')).trim(),
    'is_active: true -> false');
  await page.click('tbody tr:first-child td.col-before summary');
  assert.match(await page.textContent('tbody tr:first-child td.col-before pre'), /"username":/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-audit.png'), fullPage: true });

  // The role form offers the users and the known roles.
  await page.goto(`${srv.base}/admin/roles/new`);
  assert.ok(await page.locator('#f-user_id-choices option').count() > 100);
  assert.equal(await page.locator('#f-name-choices option').count(), 3);
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-role-form.png'), fullPage: true });

  assert.deepEqual(await page.problems(), []);
});
