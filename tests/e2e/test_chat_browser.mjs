// test_chat_browser.mjs - the chat (issue 6) in headless Debian chromium,
// driven by playwright-core, against the real `echobot serve` (ASan build)
// with a tiny random-weight model (tools/make_test_model.py; its answers are
// gibberish, which is fine; its output matrix is untied from the embeddings,
// because a tied random model tends to repeat one token, often a newline,
// which renders as nothing, and its stop tokens are muted so that an answer
// is still running when the test presses Stop).
//
// One person signs up through the real form, lands on the chat page, types
// a message and presses Enter, watches the answer stream in and finish with
// its stats footer, sends another and presses Stop, sees it stopped, then
// clears the discussion. Two servers share one instance folder (database,
// secret key) so the same session works on both: `quick` answers 48 tokens
// (the answer finishes soon), `long` up to 400 (Stop surely lands
// mid-answer). The cookie is per host, not per port, so the browser is
// logged in on both. A third server without a model shows the install
// banner. Every page must load without console errors, failed requests or
// CSP violations; every server must exit 0 on SIGTERM (LeakSanitizer).
// Screenshots: tests/artifacts/chat-browser.png, chat-browser-no-model.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
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
const WAIT = 90000; // generous: the ASan build on a loaded 2-core machine

let tmp, model, browser;
const servers = [];

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

/* One `echobot serve` in the repository root (templates/, static/). */
async function startServer(name, instance, extraEnv) {
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('ECHO_') && k !== 'SECRET_KEY'));
  Object.assign(env, { ECHO_ENV: 'development', ECHO_LOG_LEVEL: 'info', ECHO_ACCESS_LOG: '0',
    ECHO_ANTIBOT_MIN_MS: '0', ECHO_MODEL_THREADS: '1',
    ECHO_RATELIMIT_ENABLED: '0' }, extraEnv);
  const proc = spawn(ECHOBOT, ['serve', '--host', '127.0.0.1', '--port', String(port),
    '--instance', instance], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { name, base: `http://127.0.0.1:${port}`, proc, log: '', code: undefined };
  proc.stdout.on('data', (d) => { srv.log += d; });
  proc.stderr.on('data', (d) => { srv.log += d; });
  srv.exited = new Promise((ok) => proc.on('exit', (code, signal) => {
    srv.code = code === null ? signal : code;
    ok(srv.code);
  }));
  servers.push(srv);
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (srv.code !== undefined) throw new Error(`${name} exited with ${srv.code}:\n${srv.log}`);
    try {
      const r = await fetch(`${srv.base}/healthz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${name} did not become healthy:\n${srv.log}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return srv;
}

async function stopServer(srv) {
  if (srv.code === undefined) srv.proc.kill('SIGTERM');
  const timer = setTimeout(() => srv.proc.kill('SIGKILL'), WAIT);
  await srv.exited;
  clearTimeout(timer);
  return srv.code;
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'echo-chat-browser-'));
  model = path.join(tmp, 'tiny-q8_0.gguf');
  const r = spawnSync('/usr/bin/python3', [path.join(ROOT, 'tools/make_test_model.py'), '--size',
    'tiny', '--type', 'q8_0', '--untied', '--mute-stop', 'gguf', model], { encoding: 'utf8' });
  assert.equal(r.status, 0, `making the test model failed: ${r.stderr}`);
  browser = await chromium.launch({ executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  const codes = [];
  for (const s of servers) codes.push([s.name, await stopServer(s), s.log]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
  for (const [name, code, log] of codes) {
    assert.equal(code, 0, `${name} exited with ${code}:\n${log.slice(-6000)}`);
  }
});

/* A page that records what must not happen: console errors and warnings,
   uncaught exceptions, HTTP errors, failed requests (except long-polls the
   socket.io client aborts on purpose) and CSP violations. It also records
   how the streaming answer grew. */
async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    if (!r.url().includes('/socket.io/')) problems.push(`requestfailed: ${r.url()}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`); });
  page.dialogs = [];
  page.on('dialog', (d) => { page.dialogs.push(d.message()); d.accept(); });
  await page.addInitScript(() => {
    window.__csp = [];
    window.__growth = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
    });
    new MutationObserver(() => {
      const s = document.querySelector('.msg-assistant.is-streaming .msg-content');
      if (!s) return;
      const n = s.textContent.length;
      if (window.__growth[window.__growth.length - 1] !== n) window.__growth.push(n);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  page.problems = async () => {
    let csp = [];
    try { csp = await page.evaluate(() => window.__csp.map((v) => `csp: ${v}`)); } catch { /* closed */ }
    return problems.concat(csp);
  };
  return page;
}

async function signUp(page, base, name) {
  await page.goto(`${base}/signup`);
  await page.fill('input[name="username"]', name);
  await page.fill('input[name="email"]', `${name}@example.com`);
  await page.fill('input[name="password"]', 'password123');
  await page.fill('input[name="confirm_password"]', 'password123');
  await Promise.all([
    page.waitForURL(`${base}/`, { timeout: WAIT }),
    page.click('form[action="/signup"] button[type="submit"]'),
  ]);
  assert.match(await page.textContent('.flash-text'), /Welcome to Echo/);
}

const connected = (page) =>
  page.waitForSelector('#conn-status[data-state="connected"]', { timeout: WAIT });

const state = (page) => page.evaluate(() => ({
  users: Array.from(document.querySelectorAll('.msg-user .msg-content')).map((e) => e.textContent),
  answers: Array.from(document.querySelectorAll('.msg-assistant')).map((e) => ({
    text: e.querySelector('.msg-content').textContent,
    meta: e.querySelector('.msg-meta').textContent,
    streaming: e.classList.contains('is-streaming'),
  })),
  stop: !document.getElementById('stop').hidden,
  send: !document.getElementById('send').hidden,
  typing: !document.getElementById('typing').hidden,
  input: document.getElementById('message').value,
  error: document.getElementById('composer-error').textContent,
}));

test('sign up, chat, stop an answer, clear the discussion', { timeout: 10 * WAIT }, async () => {
  const instance = path.join(tmp, 'instance');
  const quick = await startServer('quick', instance, { ECHO_MODEL: model, ECHO_MAX_TOKENS: '48' });
  const long = await startServer('long', instance, { ECHO_MODEL: model, ECHO_MAX_TOKENS: '400' });
  const page = await newPage();
  const name = `browser${Date.now() % 1000000}`;
  await signUp(page, quick.base, name);
  await connected(page);
  assert.equal(await page.isVisible('#empty-state'), true);

  // Type, press Enter: the message shows, the answer streams in and ends
  // with its stats footer.
  await page.focus('#message');
  await page.keyboard.type('Hello Echo! Tell me about caf\u00e9s.');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.msg-user', { timeout: WAIT });
  await page.waitForSelector('.msg-assistant:not(.is-streaming) .msg-meta span', { timeout: WAIT });
  let s = await state(page);
  assert.deepEqual(s.users, ['Hello Echo! Tell me about caf\u00e9s.']);
  assert.equal(s.answers.length, 1);
  assert.ok(s.answers[0].text.trim().length > 0);
  assert.match(s.answers[0].meta, /\d+ tokens · \d+\.\d tok\/s/);
  assert.equal(s.stop, false);
  assert.equal(s.send, true);
  assert.equal(s.typing, false);
  assert.equal(s.input, '');
  assert.equal(s.error, '');
  // It grew piece by piece while streaming: whenever it took over a second
  // (always, in the ASan build), it must have been shown in several steps
  // (text is flushed at least every 150 ms, rendered at most every 80 ms).
  const growth = await page.evaluate(() => window.__growth);
  assert.ok(growth.every((n, i) => i === 0 || n > growth[i - 1]), JSON.stringify(growth));
  const [, tokens, rate] = s.answers[0].meta.match(/(\d+) tokens · (\d+\.\d) tok\/s/);
  if (Number(tokens) / Number(rate) > 1) {
    assert.ok(growth.length >= 2, `the answer appeared at once: ${JSON.stringify(growth)}`);
  }
  assert.deepEqual(await page.problems(), []);

  // The same session on the server that writes long answers: the
  // discussion is rendered from the database, exactly as it streamed.
  await page.goto(`${long.base}/`);
  await connected(page);
  const rendered = await state(page);
  assert.deepEqual(rendered.users, s.users);
  assert.equal(rendered.answers.length, 1);
  assert.equal(rendered.answers[0].text, s.answers[0].text);

  // Send another and press Stop mid-answer.
  await page.fill('#message', 'Now write a very long poem.');
  await page.press('#message', 'Enter');
  await page.waitForSelector('.msg-assistant.is-streaming', { timeout: WAIT });
  assert.equal(await page.isVisible('#stop'), true);
  await page.click('#stop');
  await page.waitForSelector('.msg-assistant:nth-child(4):not(.is-streaming) .msg-note',
    { timeout: WAIT });
  s = await state(page);
  assert.equal(s.answers.length, 2);
  assert.match(s.answers[1].meta, /Stopped/);
  assert.ok(s.answers[1].text.length > 0);
  assert.equal(s.stop, false);
  assert.equal(s.send, true);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-browser.png') });
  assert.deepEqual(await page.problems(), []);

  // The stopped answer is stored as streamed, marked stopped.
  await page.reload();
  await connected(page);
  const after = await state(page);
  assert.deepEqual(after.answers.map((a) => a.text), s.answers.map((a) => a.text));
  assert.match(after.answers[1].meta, /Stopped/);

  // Clear the discussion (the confirm dialog is accepted).
  await Promise.all([
    page.waitForURL(`${long.base}/`, { timeout: WAIT }),
    page.click('.clear-form button'),
  ]);
  await page.waitForLoadState('load');
  assert.deepEqual(page.dialogs, ['Clear the whole discussion? This cannot be undone.']);
  assert.match(await page.textContent('.flash-text'), /Discussion cleared\./);
  assert.equal(await page.locator('#messages > li').count(), 0);
  assert.equal(await page.isVisible('#empty-state'), true);
  assert.equal(await page.isDisabled('.clear-form button'), true);
  await connected(page);

  // The next answer starts a fresh discussion.
  await page.fill('#message', 'A fresh start.');
  await page.press('#message', 'Enter');
  await page.waitForSelector('.msg-assistant.is-streaming', { timeout: WAIT });
  await page.click('#stop');
  await page.waitForSelector('.msg-assistant:not(.is-streaming) .msg-note', { timeout: WAIT });
  assert.deepEqual((await state(page)).users, ['A fresh start.']);
  assert.deepEqual(await page.problems(), []);
  await page.context().close();
});

test('without a model the chat page shows how to install one', { timeout: 5 * WAIT }, async () => {
  const srv = await startServer('no-model', path.join(tmp, 'instance-no-model'),
    { ECHO_MODEL: path.join(tmp, 'missing.gguf') });
  const page = await newPage({ width: 390, height: 844 });
  await signUp(page, srv.base, `nomodel${Date.now() % 1000000}`);
  await connected(page);
  const banner = await page.textContent('.banner-warning');
  assert.match(banner, /The language model is not installed yet/);
  assert.match(banner, /make model/);
  assert.equal(await page.isDisabled('#message'), true);
  assert.equal(await page.isDisabled('#send'), true);
  assert.equal(await page.getAttribute('#message', 'placeholder'), 'The model is not installed yet');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px too wide for a phone`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-browser-no-model.png') });
  await page.waitForTimeout(200);
  assert.deepEqual(await page.problems(), []);
  await page.context().close();
  assert.equal(await stopServer(srv), 0, srv.log.slice(-6000));
});
