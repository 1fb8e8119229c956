// test_frontend_chat.mjs - the chat page's JavaScript in a real browser.
//
// Renders the templates with Jinja2 (tests/e2e/jinja_pages.py), serves them
// with Echo's exact Content-Security-Policy from a loopback server, and drives
// headless Debian chromium through playwright-core. socket.io.min.js is
// replaced by tests/e2e/fixtures/fake-socket.io.js, through which the test
// plays the server: acks, response_chunk/response_end streams, user_message
// from another tab, dropped connections. Covers: Markdown rendering and
// sanitization (marked + DOMPurify, vendored versions), Enter/Shift+Enter,
// ack errors keeping the typed text, Stop, stats footer, reconnecting pill,
// scroll stickiness, the character limit, the no-model banner, and that no
// page breaks the CSP or logs an error. Screenshots go to tests/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts', 'browser');
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:";
const VENDOR = {
  'marked.umd.js': 'node_modules/marked/lib/marked.umd.js',
  'purify.min.js': 'node_modules/dompurify/dist/purify.min.js',
  'socket.io.min.js': 'tests/e2e/fixtures/fake-socket.io.js',
};
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' };

let server, base, browser, pagesDir;

function chromiumPath() {
  for (const p of [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('chromium is not installed (scripts/bootstrap.sh test installs it)');
}

before(async () => {
  pagesDir = await mkdtemp(path.join(tmpdir(), 'echo-pages-'));
  const r = spawnSync('/usr/bin/python3', [path.join(ROOT, 'tests/e2e/jinja_pages.py'), pagesDir],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, `rendering the templates failed: ${r.stderr}`);
  server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let file;
    if (url.pathname.startsWith('/pages/')) {
      file = path.join(pagesDir, path.basename(url.pathname));
    } else if (url.pathname.startsWith('/static/vendor/') && VENDOR[path.basename(url.pathname)]) {
      file = path.join(ROOT, VENDOR[path.basename(url.pathname)]);
    } else if (url.pathname.startsWith('/static/')) {
      file = path.join(ROOT, path.normalize(url.pathname));
      if (!file.startsWith(path.join(ROOT, 'static') + path.sep)) file = null;
    }
    try {
      if (!file) throw new Error('no route');
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Security-Policy': CSP });
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({ executablePath: chromiumPath(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'] });
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await new Promise((ok) => server.close(ok));
  if (pagesDir) await rm(pagesDir, { recursive: true, force: true });
});

/* Opens a rendered sample page; returns {page, problems} where problems
   collects console errors, page errors, failed requests and CSP violations. */
async function open(sample, { width = 1280, height = 900, manual = false, fastTimeout = false } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`); });
  await page.addInitScript(({ manual, fastTimeout }) => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
    });
    if (manual) window.__fakeSocketManual = true;
    if (fastTimeout) window.__fakeSocketFastTimeout = true;
  }, { manual, fastTimeout });
  await page.goto(`${base}/pages/${sample}.html`, { waitUntil: 'load' });
  page.problems = async () => problems.concat(await page.evaluate(() => window.__csp.map((v) => `csp: ${v}`)));
  return page;
}

async function openChat(sample = 'chat', opts = {}) {
  const page = await open(sample, opts);
  if (!opts.manual) await page.waitForSelector('#conn-status[data-state="connected"]');
  return page;
}

const emitted = (page) => page.evaluate(() => window.__fakeSocket.emitted);
const serverEmit = (page, event, data) =>
  page.evaluate(([e, d]) => window.__fakeSocket.serverEmit(e, d), [event, data]);
const xss = (page) => page.evaluate(() => window.__xss);

test('every sample page loads without errors, 404s or CSP violations', async () => {
  for (const sample of ['landing', 'landing_flashes', 'signup', 'signup_errors', 'login',
    'login_error', 'error_404', 'error_minimal', 'chat', 'chat_empty', 'chat_no_model', 'profile',
    'profile_errors']) {
    for (const width of [1280, 390]) {
      const page = await open(sample, { width, height: 844 });
      await page.waitForTimeout(50);
      assert.deepEqual(await page.problems(), [], `${sample} at ${width}px`);
      assert.equal(await xss(page), undefined, sample);
      // Nothing overflows a phone-sized screen sideways.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${sample} at ${width}px is ${overflow}px too wide`);
      await page.context().close();
    }
  }
});

test('saved answers render as sanitized Markdown; user text stays text', async () => {
  const page = await openChat();
  const a = await page.evaluate(() => {
    const md = document.querySelectorAll('.msg-assistant .msg-content');
    return {
      rendered: Array.from(md).map((e) => e.classList.contains('is-rendered')),
      table: md[0].querySelectorAll('table tr').length,
      pre: md[0].querySelector('pre code') !== null && md[0].querySelector('code[class], table[class], p[class]') === null,
      strong: md[0].querySelector('strong')?.textContent,
      link: md[0].querySelector('a')?.getAttribute('rel'),
      target: md[0].querySelector('a')?.getAttribute('target'),
      danger: md[1].querySelectorAll('script, img, [onerror]').length,
      jsLink: md[1].querySelector('a')?.getAttribute('href') ?? null,
      dangerText: md[1].textContent,
      user: document.querySelectorAll('.msg-user .msg-content')[1].textContent,
      userHtml: document.querySelectorAll('.msg-user .msg-content')[1].children.length,
    };
  });
  assert.deepEqual(a.rendered, [true, true, true]);
  assert.equal(a.table, 3);
  assert.equal(a.pre, true);
  assert.equal(a.strong, 'lists');
  assert.equal(a.link, 'noopener noreferrer nofollow');
  assert.equal(a.target, '_blank');
  assert.equal(a.danger, 0);
  assert.equal(a.jsLink, null);
  assert.match(a.dangerText, /Raw HTML is not rendered/);
  assert.match(a.user, /<script>window.__xss = 1<\/script><img src=x/);
  assert.equal(a.userHtml, 0);
  // The wide code line scrolls inside its block, not the page.
  const pre = await page.evaluate(() => {
    const p = document.querySelector('.markdown pre');
    return { scroll: p.scrollWidth > p.clientWidth, overflow: getComputedStyle(p).overflowX,
      font: getComputedStyle(p.querySelector('code')).fontFamily };
  });
  assert.equal(pre.overflow, 'auto');
  assert.match(pre.font, /mono/i);
  await page.waitForTimeout(100);
  assert.equal(await xss(page), undefined);
  assert.deepEqual(await page.problems(), []);
  await page.context().close();
});

test('Enter sends, Shift+Enter adds a line; the ack adds the message and starts the answer', async () => {
  const page = await openChat('chat_empty');
  await page.focus('#message');
  await page.keyboard.type('First line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  assert.equal(await page.inputValue('#message'), 'First line\nsecond line');
  assert.deepEqual(await emitted(page), []);
  assert.equal(await page.textContent('#char-count'), '22 / 8000');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.msg-user');
  assert.deepEqual(await emitted(page), [{ event: 'send_message', data: { message: 'First line\nsecond line' } }]);
  const s = await page.evaluate(() => ({
    id: document.querySelector('.msg-user').dataset.id,
    text: document.querySelector('.msg-user .msg-content').textContent,
    input: document.getElementById('message').value,
    typing: !document.getElementById('typing').hidden,
    stop: !document.getElementById('stop').hidden,
    send: !document.getElementById('send').hidden,
    empty: document.getElementById('empty-state').hidden,
    clear: document.querySelector('.clear-form button').disabled,
  }));
  assert.deepEqual(s, { id: '101', text: 'First line\nsecond line', input: '', typing: true,
    stop: true, send: false, empty: true, clear: false });
  await page.context().close();
});

test('a streamed answer renders Markdown as it grows, safely, and ends with stats', async () => {
  const page = await openChat('chat_empty');
  await page.fill('#message', 'Explain');
  await page.click('#send');
  await page.waitForSelector('.msg-user');
  const chunks = ['Sure! ', 'Here is **bold** ', 'text and code:\n\n', '```c\nint main', '(void) {\n',
    '  return 0;\n}\n```\n\n', 'Not HTML: <img src=x ', 'onerror="window.__xss=5"> ', '<script>window.__xss=6</script> ',
    '[x](javascript:window.__xss=7) done.'];
  for (const [i, text] of chunks.entries()) {
    await serverEmit(page, 'response_chunk', { id: 900, text });
    if (i === 4) {
      // Mid-stream: the bubble exists, the typing dots are gone, the fence renders as code.
      await page.waitForFunction(() => document.querySelector('.msg-assistant pre code'));
      assert.equal(await page.isHidden('#typing'), true);
      assert.equal(await page.getAttribute('.msg-assistant', 'class'), 'msg msg-assistant is-streaming');
    }
  }
  await page.waitForFunction(() => /done\.$/.test(document.querySelector('.msg-assistant .msg-content').textContent.trim()));
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-streaming.png') });
  await serverEmit(page, 'response_end', { id: 900, finish_reason: 'stop', prompt_tokens: 20,
    completion_tokens: 42, tokens_per_second: 12.34 });
  const r = await page.evaluate(() => {
    const m = document.querySelector('.msg-assistant');
    return {
      cls: m.className, id: m.dataset.id,
      strong: m.querySelector('strong')?.textContent,
      code: m.querySelector('pre code')?.textContent,
      danger: m.querySelector('.msg-content').querySelectorAll('img, script, [onerror]').length,
      href: m.querySelector('.msg-content a')?.getAttribute('href') ?? null,
      meta: m.querySelector('.msg-meta').textContent,
      stop: document.getElementById('stop').hidden, send: document.getElementById('send').hidden,
      copy: m.querySelectorAll('.copy-code').length,
    };
  });
  assert.equal(r.cls, 'msg msg-assistant');
  assert.equal(r.id, '900');
  assert.equal(r.strong, 'bold');
  assert.equal(r.code, 'int main(void) {\n  return 0;\n}\n');
  assert.equal(r.danger, 0);
  assert.equal(r.href, null);
  assert.match(r.meta, /42 tokens · 12\.3 tok\/s$/);
  assert.equal(r.stop, true);
  assert.equal(r.send, false);
  await page.waitForTimeout(100);
  assert.equal(await xss(page), undefined);
  assert.deepEqual(await page.problems(), []);
  // Late chunks for a finished answer change nothing.
  await serverEmit(page, 'response_chunk', { id: 900, text: 'LATE' });
  assert.doesNotMatch(await page.textContent('.msg-assistant'), /LATE/);
  await page.context().close();
});

test('an ack error is shown inline and the typed text is kept', async () => {
  const page = await openChat('chat_empty');
  await page.evaluate(() => {
    window.__fakeSocket.respond = () => ({ ok: false, error: 'An answer is still being written.' });
  });
  await page.fill('#message', 'keep me');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('composer-error').textContent !== '');
  assert.equal(await page.textContent('#composer-error'), 'An answer is still being written.');
  assert.equal(await page.inputValue('#message'), 'keep me');
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.isVisible('#send'), true);
  assert.equal(await page.isHidden('#typing'), true);
  // A malformed ack gets a generic message, still keeping the text.
  await page.evaluate(() => { window.__fakeSocket.respond = () => 'nonsense'; });
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('composer-error').textContent === 'The message could not be sent.');
  assert.equal(await page.inputValue('#message'), 'keep me');
  // Typing clears the error.
  await page.keyboard.type('!');
  assert.equal(await page.textContent('#composer-error'), '');
  await page.context().close();
});

test('an ack that never comes times out with a message, text kept', async () => {
  const page = await openChat('chat_empty', { fastTimeout: true });
  await page.evaluate(() => { window.__fakeSocket.respond = () => undefined; });
  await page.fill('#message', 'anyone there?');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#message', 'readonly'), '');
  await page.waitForFunction(() => /did not answer/.test(document.getElementById('composer-error').textContent));
  assert.equal(await page.inputValue('#message'), 'anyone there?');
  assert.equal(await page.getAttribute('#message', 'readonly'), null);
  await page.context().close();
});

test('empty and over-long messages are refused before sending', async () => {
  const page = await openChat('chat_empty');
  await page.fill('#message', '   ');
  await page.keyboard.press('Enter');
  assert.equal(await page.textContent('#composer-error'), 'Type a message first.');
  await page.fill('#message', 'x'.repeat(8001));
  assert.equal(await page.textContent('#char-count'), '8001 / 8000');
  assert.equal(await page.getAttribute('#char-count', 'class'), 'char-count is-over');
  await page.keyboard.press('Enter');
  assert.match(await page.textContent('#composer-error'), /8001 characters long; the limit is 8000/);
  await page.fill('#message', '😀'.repeat(8000));
  assert.equal(await page.textContent('#char-count'), '8000 / 8000');
  assert.deepEqual(await emitted(page), []);
  // The box grew with the text, but stays within 40% of the screen.
  const h = await page.evaluate(() => document.getElementById('message').getBoundingClientRect().height);
  assert.ok(h > 60 && h <= 900 * 0.4 + 1, `height ${h}`);
  await page.context().close();
});

test('Stop emits stop_generation and a cancelled answer is marked Stopped', async () => {
  const page = await openChat('chat_empty');
  await page.fill('#message', 'Write a long story');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#stop:not([hidden])');
  await serverEmit(page, 'response_chunk', { id: 5, text: 'Once upon a time ' });
  await page.click('#stop');
  assert.equal((await page.textContent('#stop')).trim(), 'Stopping…');
  assert.equal(await page.isDisabled('#stop'), true);
  assert.deepEqual((await emitted(page)).map((e) => e.event), ['send_message', 'stop_generation']);
  // Enter while answering is refused with a hint.
  await page.fill('#message', 'next');
  await page.keyboard.press('Enter');
  assert.match(await page.textContent('#composer-error'), /Wait for the answer/);
  await serverEmit(page, 'response_end', { id: 5, finish_reason: 'cancelled', completion_tokens: 4,
    tokens_per_second: 8 });
  await page.waitForSelector('#stop[hidden]', { state: 'attached' });
  assert.match(await page.textContent('.msg-assistant .msg-meta'), /4 tokens · 8\.0 tok\/s\s*Stopped/);
  assert.equal(await page.isEnabled('#stop'), true);
  assert.equal((await page.textContent('#stop')).trim(), 'Stop');
  await page.context().close();
});

test('an error end without any chunk still shows a marked answer', async () => {
  const page = await openChat('chat_empty');
  await page.fill('#message', 'hi');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#typing:not([hidden])');
  await serverEmit(page, 'response_end', { id: 77, finish_reason: 'error' });
  await page.waitForSelector('.msg-assistant');
  assert.match(await page.textContent('.msg-assistant .msg-meta'), /The answer could not be completed/);
  assert.equal(await page.isHidden('#typing'), true);
  assert.equal(await page.isVisible('#send'), true);
  await page.context().close();
});

test('chunks that overtake the ack: the message goes above the answer, no typing dots', async () => {
  const page = await openChat('chat_empty');
  await page.evaluate(() => {
    document.getElementById('message').value = 'race';
    document.getElementById('composer').requestSubmit();
    window.__fakeSocket.serverEmit('response_chunk', { id: 70, text: 'early answer' });
  });
  await page.waitForSelector('.msg-user[data-id="101"]');
  const order = await page.evaluate(() => Array.from(document.querySelectorAll('.msg')).map((m) => m.className));
  assert.deepEqual(order, ['msg msg-user', 'msg msg-assistant is-streaming']);
  assert.equal(await page.isHidden('#typing'), true);
  assert.equal(await page.isVisible('#stop'), true);
  await serverEmit(page, 'response_end', { id: 70, finish_reason: 'stop' });
  assert.equal(await page.isVisible('#send'), true);
  assert.equal(await page.isHidden('#typing'), true);
  await page.context().close();
});

test('a message from another tab appears and its answer streams here too', async () => {
  const page = await openChat('chat_empty');
  await serverEmit(page, 'user_message', { id: 300, content: 'from the <b>other</b> tab' });
  await page.waitForSelector('.msg-user[data-id="300"]');
  assert.equal(await page.textContent('.msg-user .msg-content'), 'from the <b>other</b> tab');
  assert.equal(await page.isVisible('#stop'), true);
  await serverEmit(page, 'user_message', { id: 300, content: 'from the <b>other</b> tab' }); // duplicate
  assert.equal(await page.locator('.msg-user').count(), 1);
  await serverEmit(page, 'response_chunk', { id: 301, text: 'Answer for both tabs.' });
  await serverEmit(page, 'response_end', { id: 301, finish_reason: 'stop', completion_tokens: 4, tokens_per_second: 10 });
  await page.waitForFunction(() => !document.querySelector('.msg-assistant.is-streaming'));
  assert.equal((await page.textContent('.msg-assistant .msg-content')).trim(), 'Answer for both tabs.');
  assert.deepEqual(await emitted(page), []);
  // Malformed events are ignored without errors.
  await serverEmit(page, 'user_message', null);
  await serverEmit(page, 'user_message', { id: 1, content: 5 });
  await serverEmit(page, 'response_chunk', { text: 'no id' });
  await serverEmit(page, 'response_end', 'junk');
  assert.equal(await page.locator('.msg').count(), 2);
  assert.deepEqual(await page.problems(), []);
  await page.context().close();
});

test('connection states: reconnecting, interrupted answer, back online, session expired', async () => {
  const page = await openChat('chat_empty');
  await page.fill('#message', 'hello');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.msg-user');
  await serverEmit(page, 'response_chunk', { id: 8, text: 'Half an ' });
  await page.evaluate(() => window.__fakeSocket.drop('transport close'));
  assert.equal(await page.getAttribute('#conn-status', 'data-state'), 'reconnecting');
  assert.equal(await page.textContent('#conn-status'), 'Reconnecting…');
  await page.waitForFunction(() => !document.querySelector('.msg-assistant.is-streaming'));
  assert.match(await page.textContent('.msg-assistant .msg-meta'), /connection was lost/);
  assert.equal(await page.isVisible('#send'), true);
  // Sending while offline keeps the text.
  await page.fill('#message', 'while offline');
  await page.keyboard.press('Enter');
  assert.match(await page.textContent('#composer-error'), /^Not connected/);
  assert.equal(await page.inputValue('#message'), 'while offline');
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-reconnecting.png') });
  await page.evaluate(() => window.__fakeSocket.restore());
  assert.equal(await page.textContent('#conn-status'), 'Connected');
  assert.equal(await page.textContent('#composer-error'), '');
  await page.evaluate(() => window.__fakeSocket.connectError('unauthorized', false));
  assert.equal(await page.getAttribute('#conn-status', 'data-state'), 'unauthorized');
  assert.equal(await page.getAttribute('#conn-status a', 'href'), '/login?next=/');
  await page.context().close();
});

test('the view follows the stream unless the person scrolled up', async () => {
  const page = await openChat('chat', { width: 1280, height: 700 });
  const atBottom = () => page.evaluate(() => {
    const s = document.getElementById('messages-scroll');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 50;
  });
  assert.equal(await atBottom(), true);
  await page.fill('#message', 'more please');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.msg-user[data-id="101"]');
  const line = 'A line of the answer that keeps the stream going.\n\n';
  for (let i = 0; i < 10; i++) await serverEmit(page, 'response_chunk', { id: 50, text: line });
  await page.waitForTimeout(150);
  assert.equal(await atBottom(), true);
  await page.evaluate(() => { document.getElementById('messages-scroll').scrollTop = 0; });
  await page.waitForTimeout(50);
  for (let i = 0; i < 10; i++) await serverEmit(page, 'response_chunk', { id: 50, text: line });
  await page.waitForTimeout(150);
  assert.equal(await page.evaluate(() => document.getElementById('messages-scroll').scrollTop), 0);
  assert.equal(await page.isVisible('#jump-latest'), true);
  await page.click('#jump-latest');
  assert.equal(await atBottom(), true);
  assert.equal(await page.isHidden('#jump-latest'), true);
  await page.context().close();
});

test('without a model the banner shows the install command and the box is disabled', async () => {
  const page = await openChat('chat_no_model');
  assert.match(await page.textContent('.banner'), /make model/);
  assert.equal(await page.isDisabled('#message'), true);
  assert.equal(await page.isDisabled('#send'), true);
  await page.evaluate(() => document.getElementById('composer').requestSubmit());
  assert.deepEqual(await emitted(page), []);
  await page.context().close();
});

test('clear discussion and other POST forms ask or guard as intended', async () => {
  const page = await openChat('chat');
  let asked = null;
  page.on('dialog', async (d) => { asked = d.message(); await d.dismiss(); });
  await page.click('.clear-form button');
  assert.match(asked, /Clear the whole discussion/);
  assert.equal(page.url(), `${base}/pages/chat.html`); // dismissed: nothing was posted
  await page.click('.flash-close');
  assert.equal(await page.locator('.flashes').count(), 0);
  await page.context().close();

  const profile = await open('profile');
  const counter = await profile.textContent('.char-counter');
  assert.equal(counter, '0 / 2000');
  await profile.fill('#f-content', 'héllo 😀');
  assert.equal(await profile.textContent('.char-counter'), '7 / 2000');
  assert.match(await profile.textContent('.stat time'), /2025/);
  // The honeypot is out of sight and out of the tab order.
  const hp = await profile.evaluate(() => {
    const r = document.getElementById('hp-website').getBoundingClientRect();
    return { right: r.right, tab: document.getElementById('hp-website').tabIndex };
  });
  assert.ok(hp.right < 0, `honeypot visible at ${hp.right}`);
  assert.equal(hp.tab, -1);
  await profile.context().close();
});

test('phone-sized chat screenshot while answering', async () => {
  const page = await openChat('chat', { width: 390, height: 844 });
  await page.fill('#message', 'And on a phone?');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.msg-user[data-id="101"]');
  await serverEmit(page, 'response_chunk', { id: 60, text: 'Works on a **small screen** too:\n\n```\n' +
    'a_long_line_of_code_that_must_scroll_sideways_inside_its_block(1, 2, 3, 4, 5)\n```\n' });
  await page.waitForSelector('.msg-assistant.is-streaming pre');
  await page.waitForTimeout(100);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px too wide`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'chat-phone-streaming.png') });
  await page.context().close();
});
