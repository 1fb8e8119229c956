/*
 * chat-core.js - the parts of the chat page's logic that need no DOM: message
 * validation and character counting, assembling streamed answer chunks, the
 * stats line under an answer, keyboard decisions, scroll stickiness, a render
 * throttle, and Markdown rendering through marked + DOMPurify.
 *
 * Loaded in the browser as a classic script (sets window.EchoChatCore) and in
 * node by the tests (module.exports), so chat.js keeps only DOM wiring.
 * Nothing here keeps global state except the DOMPurify hook installed once
 * per DOMPurify instance by markdownRenderer().
 */
(function (root, factory) {
  'use strict';
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.EchoChatCore = factory();
  }
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  var DEFAULT_MAX_CHARS = 8000;

  /* Characters as the server counts them: Unicode code points, so an emoji
     made of a surrogate pair counts once (String.length would count two). */
  function countChars(text) {
    var n = 0;
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        var d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
      n++;
    }
    return n;
  }

  /* Checks a message before send_message; returns null when it may be sent,
     or the sentence to show under the input. The server checks again. */
  function validateMessage(text, maxChars) {
    var max = maxChars > 0 ? maxChars : DEFAULT_MAX_CHARS;
    if (typeof text !== 'string' || text.trim() === '') {
      return 'Type a message first.';
    }
    var n = countChars(text);
    if (n > max) {
      return 'Your message is ' + n + ' characters long; the limit is ' + max + '.';
    }
    return null;
  }

  /* "123 / 8000" and the class state of the counter. */
  function counterState(text, maxChars) {
    var n = countChars(text);
    var state = n > maxChars ? 'over' : (n >= maxChars * 0.9 ? 'near' : 'ok');
    return { count: n, label: n + ' / ' + maxChars, state: state };
  }

  /* Stream assembly. The server sends response_chunk {id, text} pieces cut at
     word boundaries and finishes with response_end {id, ...}; this object
     keeps each answer's text by id, ignores malformed events and chunks that
     arrive after the end of their answer, and says whether a chunk opened a
     new answer (so the page can create its bubble). */
  function StreamAssembler() {
    this.texts = Object.create(null);
    this.ended = Object.create(null);
    this.current = null;
  }

  function validId(id) {
    return (typeof id === 'number' && isFinite(id)) || (typeof id === 'string' && id !== '');
  }

  /* Returns null for an ignored chunk, else {id, text (the whole answer so
     far), isNew}. */
  StreamAssembler.prototype.chunk = function (data) {
    if (!data || !validId(data.id) || typeof data.text !== 'string') return null;
    var key = String(data.id);
    if (this.ended[key]) return null;
    var isNew = !(key in this.texts);
    if (isNew) this.texts[key] = '';
    this.texts[key] += data.text;
    this.current = key;
    return { id: key, text: this.texts[key], isNew: isNew };
  };

  /* Returns null for an ignored end, else {id, text, known (whether chunks
     came before), info (the end event)}. */
  StreamAssembler.prototype.end = function (data) {
    if (!data || !validId(data.id)) return null;
    var key = String(data.id);
    if (this.ended[key]) return null;
    var known = key in this.texts;
    var text = known ? this.texts[key] : '';
    this.ended[key] = true;
    delete this.texts[key];
    if (this.current === key) this.current = null;
    return { id: key, text: text, known: known, info: data };
  };

  StreamAssembler.prototype.isStreaming = function () {
    return this.current !== null;
  };

  /* Marks every open answer as finished (a dropped connection ends them on
     the server too); returns them as [{id, text}]. */
  StreamAssembler.prototype.abortAll = function () {
    var ids = Object.keys(this.texts);
    var open = [];
    for (var i = 0; i < ids.length; i++) {
      this.ended[ids[i]] = true;
      open.push({ id: ids[i], text: this.texts[ids[i]] });
    }
    this.texts = Object.create(null);
    this.current = null;
    return open;
  };

  /* The small line under a finished answer: "42 tokens · 12.3 tok/s" and a
     note for an answer that did not end normally. */
  function formatStats(info) {
    var parts = [];
    var n = info && Number(info.completion_tokens);
    if (isFinite(n) && n > 0) parts.push(Math.round(n) + (Math.round(n) === 1 ? ' token' : ' tokens'));
    var r = info && Number(info.tokens_per_second);
    if (isFinite(r) && r > 0) parts.push(r.toFixed(1) + ' tok/s');
    return { text: parts.join(' · '), note: finishNote(info && info.finish_reason) };
  }

  /* null for a normal stop; else {text, kind} where kind "warning"|"error". */
  function finishNote(reason) {
    switch (reason) {
      case 'cancelled': return { text: 'Stopped', kind: 'warning' };
      case 'length': return { text: 'Cut off at the length limit', kind: 'warning' };
      case 'error': return { text: 'The answer could not be completed', kind: 'error' };
      case 'disconnected': return { text: 'Interrupted: the connection was lost', kind: 'error' };
      default: return null;
    }
  }

  /* What a keydown in the message box should do: "send" for Enter alone
     (not while an input method is composing, e.g. Japanese or Chinese),
     null to let the browser insert the newline or handle it. */
  function keyAction(ev) {
    if (!ev || ev.key !== 'Enter') return null;
    if (ev.isComposing || ev.keyCode === 229) return null;
    if (ev.shiftKey || ev.altKey || ev.ctrlKey || ev.metaKey) return null;
    return 'send';
  }

  /* Whether a scroller counts as "at the bottom": within threshold px, so the
     view keeps following the stream until the person scrolls up. */
  function isNearBottom(scrollTop, clientHeight, scrollHeight, threshold) {
    var t = threshold === undefined ? 48 : threshold;
    return scrollHeight - (scrollTop + clientHeight) <= t;
  }

  /* Runs fn at most once per interval ms, always with the latest call's
     arguments, and always once more after the last call (trailing edge), so
     the final state of a stream gets rendered. timers is injectable for
     tests: {now(), set(fn, ms), clear(handle)}. flush() runs a pending call
     at once; cancel() drops it. */
  function throttle(fn, interval, timers) {
    var t = timers || {
      now: function () { return Date.now(); },
      set: function (f, ms) { return setTimeout(f, ms); },
      clear: function (h) { clearTimeout(h); }
    };
    var last = -Infinity;
    var handle = null;
    var pendingArgs = null;

    function run() {
      handle = null;
      last = t.now();
      var args = pendingArgs;
      pendingArgs = null;
      fn.apply(null, args);
    }
    function throttled() {
      pendingArgs = Array.prototype.slice.call(arguments);
      if (handle !== null) return;
      var wait = interval - (t.now() - last);
      if (wait <= 0) {
        run();
      } else {
        handle = t.set(run, wait);
      }
    }
    throttled.flush = function () {
      if (handle !== null) {
        t.clear(handle);
        run();
      }
    };
    throttled.cancel = function () {
      if (handle !== null) t.clear(handle);
      handle = null;
      pendingArgs = null;
    };
    return throttled;
  }

  /* Tags an answer may not contain even after DOMPurify: anything that could
     submit, load or restyle content. Images are out too: a prompt-injected
     answer must not make the browser fetch a URL. */
  var FORBID_TAGS = ['style', 'form', 'input', 'button', 'textarea', 'select', 'option',
    'img', 'picture', 'source', 'video', 'audio', 'iframe', 'object', 'embed', 'svg', 'math',
    'link', 'meta', 'base', 'dialog', 'details', 'summary'];
  var FORBID_ATTR = ['style', 'class', 'id', 'srcset', 'action', 'formaction', 'background'];

  function escapeHtml(text) {
    return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  /* Returns render(markdownText) -> safe HTML string, using the given marked
     and DOMPurify (the browser globals, or node modules in tests).
     Two layers: marked's own renderer shows raw HTML in an answer as text
     (a model asked about HTML should show it, not have it vanish) and turns
     images into links; DOMPurify then removes anything dangerous that
     Markdown itself can produce (javascript: links...). Escaping first also
     keeps Chrome from reporting CSP violations while DOMPurify parses
     markup with event attributes. Links open in a new tab without referrer
     or opener. */
  function markdownRenderer(marked, DOMPurify) {
    if (!marked || typeof marked.Marked !== 'function') throw new Error('marked is missing');
    if (!DOMPurify || typeof DOMPurify.sanitize !== 'function') throw new Error('DOMPurify is missing');
    if (!DOMPurify.__echoHooked && typeof DOMPurify.addHook === 'function') {
      DOMPurify.addHook('afterSanitizeAttributes', function (node) {
        if (node.nodeName === 'A' && node.hasAttribute('href')) {
          node.setAttribute('target', '_blank');
          node.setAttribute('rel', 'noopener noreferrer nofollow');
        }
      });
      DOMPurify.__echoHooked = true;
    }
    var md = new marked.Marked({ gfm: true, breaks: true, async: false });
    md.use({
      renderer: {
        html: function (token) {
          var text = escapeHtml(token.text !== undefined ? token.text : token.raw);
          return token.block ? '<p>' + text.replace(/\n+$/, '').replace(/\n/g, '<br>') + '</p>\n' : text;
        },
        image: function (token) {
          var label = escapeHtml(token.text || token.href || 'image');
          return '<a href="' + escapeHtml(token.href || '') + '">' + label + '</a>';
        }
      }
    });
    var purifyOptions = {
      USE_PROFILES: { html: true },
      FORBID_TAGS: FORBID_TAGS,
      FORBID_ATTR: FORBID_ATTR,
      ALLOW_DATA_ATTR: false,
      ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/(?!\/))/i
    };
    return function render(text) {
      var html = md.parse(String(text === undefined || text === null ? '' : text));
      return DOMPurify.sanitize(html, purifyOptions);
    };
  }

  return {
    DEFAULT_MAX_CHARS: DEFAULT_MAX_CHARS,
    countChars: countChars,
    validateMessage: validateMessage,
    counterState: counterState,
    StreamAssembler: StreamAssembler,
    formatStats: formatStats,
    finishNote: finishNote,
    keyAction: keyAction,
    isNearBottom: isNearBottom,
    throttle: throttle,
    markdownRenderer: markdownRenderer,
    escapeHtml: escapeHtml,
    FORBID_TAGS: FORBID_TAGS
  };
}));
