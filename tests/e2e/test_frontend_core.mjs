// test_frontend_core.mjs - unit tests of static/js/chat-core.js in node:
// character counting and validation as the server counts, stream assembly of
// response_chunk/response_end events, the stats line, Enter/Shift+Enter,
// scroll stickiness, the render throttle (with a fake clock), and the
// Markdown pipeline's wiring with the real marked. The sanitizer itself runs
// in a real browser in test_frontend_chat.mjs (DOMPurify needs a DOM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as marked from 'marked';

const require = createRequire(import.meta.url);
const core = require('../../static/js/chat-core.js');

test('countChars counts code points, not UTF-16 units', () => {
  assert.equal(core.countChars(''), 0);
  assert.equal(core.countChars('hello'), 5);
  assert.equal(core.countChars('héllo wörld'), 11);
  assert.equal(core.countChars('😀'), 1);
  assert.equal(core.countChars('a😀b'), 3);
  assert.equal(core.countChars('👍🏽'), 2); // emoji + skin tone modifier: two code points
  assert.equal(core.countChars('\ud800'), 1); // a lone surrogate still counts once
  assert.equal(core.countChars('\ud800x'), 2);
  assert.equal(core.countChars('x\udc00'), 2);
});

test('validateMessage: empty, whitespace, limit, emoji at the limit', () => {
  assert.match(core.validateMessage('', 8000), /Type a message/);
  assert.match(core.validateMessage('  \n\t ', 8000), /Type a message/);
  assert.match(core.validateMessage(undefined, 8000), /Type a message/);
  assert.equal(core.validateMessage('hi', 8000), null);
  assert.equal(core.validateMessage('a'.repeat(8000), 8000), null);
  assert.match(core.validateMessage('a'.repeat(8001), 8000), /8001 characters long; the limit is 8000/);
  // 8000 emoji are 16000 UTF-16 units but 8000 characters: allowed.
  assert.equal(core.validateMessage('😀'.repeat(8000), 8000), null);
  assert.match(core.validateMessage('😀'.repeat(8001), 8000), /8001/);
  // A missing or nonsense limit falls back to the server's 8000.
  assert.equal(core.validateMessage('a'.repeat(8000), 0), null);
  assert.notEqual(core.validateMessage('a'.repeat(8001), NaN), null);
});

test('counterState marks near and over the limit', () => {
  assert.deepEqual(core.counterState('', 100), { count: 0, label: '0 / 100', state: 'ok' });
  assert.equal(core.counterState('a'.repeat(89), 100).state, 'ok');
  assert.equal(core.counterState('a'.repeat(90), 100).state, 'near');
  assert.equal(core.counterState('a'.repeat(100), 100).state, 'near');
  assert.equal(core.counterState('a'.repeat(101), 100).state, 'over');
  assert.equal(core.counterState('😀😀', 100).label, '2 / 100');
});

test('StreamAssembler joins word-boundary chunks per id', () => {
  const s = new core.StreamAssembler();
  assert.equal(s.isStreaming(), false);
  const pieces = ['Hello', ' wor', 'ld, ', 'naïve ', '😀 ', 'end.'];
  let last;
  pieces.forEach((text, i) => {
    last = s.chunk({ id: 42, text });
    assert.equal(last.isNew, i === 0);
    assert.equal(last.id, '42');
  });
  assert.equal(last.text, pieces.join(''));
  assert.equal(s.isStreaming(), true);
  const end = s.end({ id: 42, finish_reason: 'stop', completion_tokens: 6 });
  assert.equal(end.text, 'Hello world, naïve 😀 end.');
  assert.equal(end.known, true);
  assert.equal(end.info.completion_tokens, 6);
  assert.equal(s.isStreaming(), false);
  // Chunks and ends after the end are ignored.
  assert.equal(s.chunk({ id: 42, text: 'late' }), null);
  assert.equal(s.end({ id: 42 }), null);
});

test('StreamAssembler ignores malformed events', () => {
  const s = new core.StreamAssembler();
  for (const bad of [null, undefined, 5, 'x', {}, { id: 1 }, { text: 'x' }, { id: 1, text: 5 },
    { id: null, text: 'x' }, { id: '', text: 'x' }, { id: NaN, text: 'x' }, { id: {}, text: 'x' },
    { id: Infinity, text: 'x' }]) {
    assert.equal(s.chunk(bad), null, JSON.stringify(bad));
  }
  assert.equal(s.isStreaming(), false);
  assert.equal(s.end(null), null);
  assert.equal(s.end({}), null);
  assert.equal(s.end({ id: {} }), null);
});

test('StreamAssembler: an end without chunks, string ids, empty chunks', () => {
  const s = new core.StreamAssembler();
  const e = s.end({ id: 'a1', finish_reason: 'error' });
  assert.deepEqual([e.id, e.text, e.known], ['a1', '', false]);
  const c = s.chunk({ id: 7, text: '' });
  assert.equal(c.isNew, true);
  assert.equal(s.chunk({ id: '7', text: 'x' }).text, 'x'); // 7 and "7" are one answer
});

test('StreamAssembler.abortAll returns what was open and ends it', () => {
  const s = new core.StreamAssembler();
  s.chunk({ id: 1, text: 'partial ' });
  s.chunk({ id: 1, text: 'answer' });
  assert.deepEqual(s.abortAll(), [{ id: '1', text: 'partial answer' }]);
  assert.equal(s.isStreaming(), false);
  assert.equal(s.chunk({ id: 1, text: 'more' }), null);
  assert.deepEqual(s.abortAll(), []);
});

test('formatStats: tokens, speed and finish notes', () => {
  assert.deepEqual(core.formatStats({ finish_reason: 'stop', completion_tokens: 42, tokens_per_second: 12.345 }),
    { text: '42 tokens · 12.3 tok/s', note: null });
  assert.equal(core.formatStats({ completion_tokens: 1 }).text, '1 token');
  assert.equal(core.formatStats({}).text, '');
  assert.equal(core.formatStats({ completion_tokens: 'x', tokens_per_second: -1 }).text, '');
  assert.equal(core.formatStats(null).text, '');
  assert.deepEqual(core.formatStats({ finish_reason: 'cancelled' }).note, { text: 'Stopped', kind: 'warning' });
  assert.equal(core.formatStats({ finish_reason: 'length' }).note.text, 'Cut off at the length limit');
  assert.equal(core.formatStats({ finish_reason: 'error' }).note.kind, 'error');
  assert.equal(core.formatStats({ finish_reason: 'disconnected' }).note.kind, 'error');
  assert.equal(core.formatStats({ finish_reason: 'something-new' }).note, null);
});

test('keyAction: Enter sends, Shift+Enter and IME composition do not', () => {
  assert.equal(core.keyAction({ key: 'Enter' }), 'send');
  assert.equal(core.keyAction({ key: 'Enter', shiftKey: true }), null);
  assert.equal(core.keyAction({ key: 'Enter', isComposing: true }), null);
  assert.equal(core.keyAction({ key: 'Enter', keyCode: 229 }), null);
  assert.equal(core.keyAction({ key: 'Enter', ctrlKey: true }), null);
  assert.equal(core.keyAction({ key: 'Enter', altKey: true }), null);
  assert.equal(core.keyAction({ key: 'Enter', metaKey: true }), null);
  assert.equal(core.keyAction({ key: 'a' }), null);
  assert.equal(core.keyAction(null), null);
});

test('isNearBottom', () => {
  assert.equal(core.isNearBottom(0, 500, 500), true);
  assert.equal(core.isNearBottom(460, 500, 1000), true);   // 40 px away
  assert.equal(core.isNearBottom(400, 500, 1000), false);  // 100 px away
  assert.equal(core.isNearBottom(400, 500, 1000, 100), true);
});

function fakeTimers() {
  const t = { time: 0, queue: [], next: 1 };
  t.now = () => t.time;
  t.set = (fn, ms) => { const h = t.next++; t.queue.push({ h, at: t.time + ms, fn }); return h; };
  t.clear = (h) => { t.queue = t.queue.filter((q) => q.h !== h); };
  t.advance = (ms) => {
    t.time += ms;
    for (;;) {
      const due = t.queue.filter((q) => q.at <= t.time).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      t.queue = t.queue.filter((q) => q !== due);
      due.fn();
    }
  };
  return t;
}

test('throttle: leading call, at most one per interval, trailing call with the latest args', () => {
  const timers = fakeTimers();
  timers.time = 1000;
  const calls = [];
  const f = core.throttle((x) => calls.push([timers.time, x]), 80, timers);
  f('a');                   // leading edge: runs now
  f('b'); f('c');           // coalesced
  assert.deepEqual(calls, [[1000, 'a']]);
  timers.advance(79);
  assert.equal(calls.length, 1);
  timers.advance(1);
  assert.deepEqual(calls[1], [1080, 'c']);
  timers.advance(500);
  assert.equal(calls.length, 2); // nothing pending, nothing runs
  f('d');                   // long after: immediate again
  assert.deepEqual(calls[2], [1580, 'd']);
});

test('throttle: flush runs the pending call now, cancel drops it', () => {
  const timers = fakeTimers();
  const calls = [];
  const f = core.throttle((x) => calls.push(x), 100, timers);
  f(1); f(2);
  f.flush();
  assert.deepEqual(calls, [1, 2]);
  timers.advance(1000);
  assert.deepEqual(calls, [1, 2]);
  f(3); f(4);
  f.cancel();
  timers.advance(1000);
  assert.deepEqual(calls, [1, 2, 3]);
  f.flush(); // nothing pending: no call
  assert.deepEqual(calls, [1, 2, 3]);
});

test('markdownRenderer feeds marked output through DOMPurify with the strict options', () => {
  const seen = [];
  const purify = {
    sanitize(html, opts) { seen.push({ html, opts }); return 'SANITIZED:' + html.length; },
    addHook(name, fn) { this.hook = [name, fn]; },
  };
  const render = core.markdownRenderer(marked, purify);
  const out = render('# Title\n\n**bold** <img src=x onerror=alert(1)>\n\n```js\nlet a = 1 < 2;\n```');
  assert.equal(seen.length, 1);
  assert.equal(out, 'SANITIZED:' + seen[0].html.length);
  assert.match(seen[0].html, /<h1>Title<\/h1>/);
  assert.match(seen[0].html, /<strong>bold<\/strong>/);
  assert.match(seen[0].html, /<pre><code class="language-js">let a = 1 &lt; 2;/);
  // Raw HTML in the answer is shown as text, before DOMPurify even sees it.
  assert.match(seen[0].html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  assert.doesNotMatch(seen[0].html, /<img/);
  const o = seen[0].opts;
  for (const tag of ['img', 'style', 'form', 'input', 'iframe', 'svg', 'math']) {
    assert.ok(o.FORBID_TAGS.includes(tag), tag);
  }
  assert.ok(o.FORBID_ATTR.includes('style'));
  assert.equal(o.ALLOW_DATA_ATTR, false);
  for (const good of ['https://a.example/x', 'http://a', 'mailto:x@y', '#top', '/local']) {
    assert.ok(o.ALLOWED_URI_REGEXP.test(good), good);
  }
  for (const bad of ['javascript:alert(1)', 'JaVaScRiPt:x', 'data:text/html,x', '//evil.example',
    'vbscript:x', 'file:///etc/passwd']) {
    assert.ok(!o.ALLOWED_URI_REGEXP.test(bad), bad);
  }
  assert.equal(purify.hook[0], 'afterSanitizeAttributes');
  // One hook per DOMPurify instance, however many renderers are made.
  const before = purify.hook;
  core.markdownRenderer(marked, purify);
  assert.equal(purify.hook, before);
  // null/undefined render as empty input, not "null".
  render(null);
  assert.doesNotMatch(seen[1].html, /null/);
});

test('markdownRenderer: breaks, lists, tables and unfinished fences with real marked', () => {
  const html = [];
  const render = core.markdownRenderer(marked, { sanitize: (h) => { html.push(h); return h; }, addHook() {} });
  render('line one\nline two');
  assert.match(html[0], /line one<br>line two/);
  render('| a | b |\n|---|---|\n| 1 | 2 |');
  assert.match(html[1], /<table>/);
  // A stream can stop inside a code fence: the rest renders as code, not as HTML.
  render('Look:\n```html\n<script>alert(1)</script>');
  assert.match(html[2], /<pre><code class="language-html">&lt;script&gt;/);
});

test('markdownRenderer: raw HTML blocks and inline tags become text, images become links', () => {
  const render = core.markdownRenderer(marked, { sanitize: (h) => h, addHook() {} });
  const out = render('Say <b>hi</b> & <i onclick="x()">bye</i>\n\n<div class="x">\nblock <script>alert(1)</script>\n</div>\n\n![a cat](https://example.org/cat.png)');
  assert.match(out, /Say &lt;b&gt;hi&lt;\/b&gt; &amp; &lt;i onclick=&quot;x\(\)&quot;&gt;bye&lt;\/i&gt;/);
  assert.match(out, /<p>&lt;div class=&quot;x&quot;&gt;<br>block &lt;script&gt;alert\(1\)&lt;\/script&gt;<br>&lt;\/div&gt;<\/p>/);
  assert.match(out, /<a href="https:\/\/example.org\/cat.png">a cat<\/a>/);
  assert.doesNotMatch(out, /<(img|script|div|b|i)[\s>]/);
  assert.equal(core.escapeHtml(`<a href="x" title='y'>&</a>`),
    '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});

test('markdownRenderer refuses missing libraries', () => {
  assert.throws(() => core.markdownRenderer(undefined, { sanitize() {} }), /marked/);
  assert.throws(() => core.markdownRenderer({ parse() {} }, { sanitize() {} }), /marked/);
  assert.throws(() => core.markdownRenderer(marked, undefined), /DOMPurify/);
});
