/*
 * chat.js - the live part of the chat page (templates/chat.html).
 *
 * Renders the server-rendered answers as Markdown, and talks to the server
 * over Socket.IO (issue 6):
 *   emit  send_message {message} with an ack {ok: true, id} | {ok: false, error}
 *   emit  stop_generation
 *   on    response_chunk {id, text}        text pieces cut at word boundaries
 *   on    response_end {id, finish_reason, prompt_tokens, completion_tokens,
 *                       tokens_per_second}
 *   on    user_message {id, content}       a message sent from another tab
 * Logic that needs no DOM lives in chat-core.js (unit tested in node); this
 * file is wiring. Markdown goes through marked + DOMPurify before it touches
 * innerHTML; everything else is set with textContent.
 */
(function () {
  'use strict';

  var core = window.EchoChatCore;
  var root = document.getElementById('chat');
  if (!root || !core) return;

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    scroll: $('messages-scroll'),
    list: $('messages'),
    empty: $('empty-state'),
    typing: $('typing'),
    jump: $('jump-latest'),
    form: $('composer'),
    input: $('message'),
    send: $('send'),
    stop: $('stop'),
    stopLabel: document.querySelector('#stop span:last-child'),
    error: $('composer-error'),
    counter: $('char-count'),
    status: $('conn-status'),
    clearButton: root.querySelector('.clear-form button')
  };

  var maxChars = parseInt(root.getAttribute('data-max-chars'), 10) || core.DEFAULT_MAX_CHARS;
  var modelReady = root.getAttribute('data-model-ready') === 'true';
  var assembler = new core.StreamAssembler();
  var bubbles = Object.create(null);   /* answer id -> {li, content} while streaming */
  var awaitingAnswer = false;          /* a message was accepted, no chunk yet */
  var pendingSend = null;              /* {text} while send_message waits for its ack */
  var stick = true;                    /* follow the stream unless the person scrolled up */
  var socket = null;

  var renderMarkdown = null;
  try {
    renderMarkdown = core.markdownRenderer(window.marked, window.DOMPurify);
  } catch (e) {
    /* Vendor files missing: answers stay plain text, which is safe. */
    renderMarkdown = null;
  }

  /* ---------- rendering ---------- */

  function setMarkdown(el, text) {
    if (renderMarkdown) {
      el.innerHTML = renderMarkdown(text);
      el.classList.add('is-rendered');
    } else {
      el.textContent = text;
    }
  }

  function addCopyButtons(el) {
    if (!navigator.clipboard || typeof navigator.clipboard.writeText !== 'function') return;
    var blocks = el.querySelectorAll('pre');
    for (var i = 0; i < blocks.length; i++) {
      var pre = blocks[i];
      if (pre.querySelector('.copy-code')) continue;
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'copy-code';
      button.textContent = 'Copy';
      button.setAttribute('aria-label', 'Copy code');
      button.addEventListener('click', copyHandler(pre, button));
      pre.appendChild(button);
    }
  }

  function copyHandler(pre, button) {
    return function () {
      var code = pre.querySelector('code');
      var text = (code || pre).textContent;
      navigator.clipboard.writeText(text).then(function () {
        button.textContent = 'Copied';
      }, function () {
        button.textContent = 'Copy failed';
      });
      setTimeout(function () { button.textContent = 'Copy'; }, 1600);
    };
  }

  function formatTime(ts, dateOnly) {
    var d = new Date(ts * 1000);
    if (isNaN(d.getTime())) return null;
    if (dateOnly) return d.toLocaleDateString();
    var now = new Date();
    var time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === now.toDateString()) return time;
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ', ' + time;
  }

  function timeElement(ts) {
    var t = document.createElement('time');
    t.setAttribute('data-ts', String(ts));
    t.setAttribute('datetime', new Date(ts * 1000).toISOString());
    t.textContent = formatTime(ts, false);
    return t;
  }

  function scrollToBottom() {
    els.scroll.scrollTop = els.scroll.scrollHeight;
    stick = true;
    els.jump.hidden = true;
  }

  /* After content grew: follow it, or offer a jump button if the person is
     reading further up. */
  function contentGrew() {
    if (stick) {
      els.scroll.scrollTop = els.scroll.scrollHeight;
    } else {
      els.jump.hidden = false;
    }
  }

  function messageShell(role, id) {
    var li = document.createElement('li');
    li.className = 'msg msg-' + role;
    if (id !== null && id !== undefined) li.setAttribute('data-id', String(id));
    var body = document.createElement('div');
    body.className = 'msg-body';
    var label = document.createElement('p');
    label.className = 'sr-only';
    label.textContent = role === 'user' ? 'You said:' : 'Echo said:';
    body.appendChild(label);
    var content = document.createElement('div');
    content.className = role === 'user' ? 'msg-content' : 'msg-content markdown';
    body.appendChild(content);
    var meta = document.createElement('div');
    meta.className = 'msg-meta';
    body.appendChild(meta);
    if (role === 'assistant') {
      var avatar = document.createElement('img');
      avatar.className = 'avatar avatar-sm msg-avatar';
      avatar.src = '/static/img/logo.svg';
      avatar.alt = '';
      avatar.width = 32;
      avatar.height = 32;
      li.appendChild(avatar);
    }
    li.appendChild(body);
    return { li: li, content: content, meta: meta };
  }

  function messagesChanged() {
    els.empty.hidden = els.list.children.length > 0;
    if (els.clearButton) els.clearButton.disabled = els.list.children.length === 0;
  }

  function hasUserMessage(id) {
    return els.list.querySelector('.msg-user[data-id="' + String(id).replace(/[^0-9A-Za-z_-]/g, '') + '"]') !== null;
  }

  /* A user message joins the list before any answer that is already
     streaming for it (chunks may overtake the ack). */
  function appendUserMessage(id, text) {
    if (id !== null && id !== undefined && hasUserMessage(id)) return;
    var m = messageShell('user', id);
    m.content.textContent = text;
    m.meta.appendChild(timeElement(Date.now() / 1000));
    var streaming = assembler.current !== null ? bubbles[assembler.current] : null;
    if (streaming && streaming.li.parentNode === els.list) {
      els.list.insertBefore(m.li, streaming.li);
    } else {
      els.list.appendChild(m.li);
    }
    messagesChanged();
    scrollToBottom();
  }

  function answerBubble(id) {
    var m = messageShell('assistant', id);
    m.li.classList.add('is-streaming');
    els.list.appendChild(m.li);
    messagesChanged();
    bubbles[id] = m;
    return m;
  }

  var renderStreaming = core.throttle(function (id, text) {
    var m = bubbles[id];
    if (!m) return;
    setMarkdown(m.content, text);
    contentGrew();
  }, 80);

  function finishAnswer(id, text, info, known) {
    renderStreaming.flush();
    var m = bubbles[id];
    if (!m && !known) m = answerBubble(id);
    if (!m) return;
    delete bubbles[id];
    m.li.classList.remove('is-streaming');
    setMarkdown(m.content, text);
    if (text.trim() === '' && (!info || info.finish_reason === 'stop')) {
      m.content.textContent = '(empty answer)';
    }
    addCopyButtons(m.content);
    var stats = core.formatStats(info || {});
    m.meta.textContent = '';
    m.meta.appendChild(timeElement(Date.now() / 1000));
    if (stats.text) {
      var s = document.createElement('span');
      s.textContent = stats.text;
      m.meta.appendChild(s);
    }
    if (stats.note) {
      var n = document.createElement('span');
      n.className = stats.note.kind === 'error' ? 'msg-note msg-note-error' : 'msg-note';
      n.textContent = stats.note.text;
      m.meta.appendChild(n);
    }
    contentGrew();
  }

  /* ---------- state of the composer ---------- */

  function answering() {
    return awaitingAnswer || assembler.isStreaming();
  }

  function updateControls() {
    var busy = answering();
    els.stop.hidden = !busy;
    els.send.hidden = busy;
    els.typing.hidden = !awaitingAnswer;
    els.send.disabled = !modelReady || pendingSend !== null;
    els.input.readOnly = pendingSend !== null;
    if (!busy) {
      els.stop.disabled = false;
      els.stopLabel.textContent = 'Stop';
    }
  }

  function showError(text) {
    els.error.textContent = text || '';
  }

  function updateCounter() {
    var c = core.counterState(els.input.value, maxChars);
    els.counter.textContent = c.label;
    els.counter.classList.toggle('is-near', c.state === 'near');
    els.counter.classList.toggle('is-over', c.state === 'over');
  }

  function autoGrow() {
    /* CSSOM writes are allowed by the CSP (only style attributes in markup are not). */
    els.input.style.height = 'auto';
    els.input.style.height = Math.min(els.input.scrollHeight + 2, Math.round(window.innerHeight * 0.4)) + 'px';
  }

  function startAnswering() {
    awaitingAnswer = true;
    updateControls();
    scrollToBottom();
  }

  /* ---------- socket ---------- */

  function setStatus(state, text, link) {
    els.status.setAttribute('data-state', state);
    els.status.textContent = text;
    if (link) {
      els.status.appendChild(document.createTextNode(' '));
      var a = document.createElement('a');
      a.href = link.href;
      a.textContent = link.text;
      els.status.appendChild(a);
    }
  }

  function send() {
    if (!modelReady || pendingSend) return;
    if (answering()) {
      showError('Wait for the answer to finish, or press Stop.');
      return;
    }
    var text = els.input.value;
    var problem = core.validateMessage(text, maxChars);
    if (problem) {
      showError(problem);
      return;
    }
    if (!socket || !socket.connected) {
      showError('Not connected. Your message is kept; send it again once the connection is back.');
      return;
    }
    showError('');
    pendingSend = { text: text };
    updateControls();
    socket.timeout(20000).emit('send_message', { message: text }, function (err, res) {
      pendingSend = null;
      if (err) {
        updateControls();
        showError('The server did not answer in time. Your message is kept; try again.');
        return;
      }
      if (!res || res.ok !== true) {
        updateControls();
        var why = res && typeof res.error === 'string' && res.error ? res.error : 'The message could not be sent.';
        showError(why);
        return;
      }
      if (els.input.value === text) {
        els.input.value = '';
        updateCounter();
        autoGrow();
      }
      appendUserMessage(res.id, text);
      /* Chunks may have overtaken the ack: then the answer is already showing. */
      if (assembler.isStreaming()) updateControls(); else startAnswering();
      els.input.focus();
    });
  }

  function onChunk(data) {
    var r = assembler.chunk(data);
    if (!r) return;
    if (r.isNew) {
      awaitingAnswer = false;
      answerBubble(r.id);
      updateControls();
    }
    renderStreaming(r.id, r.text);
  }

  function onEnd(data) {
    var r = assembler.end(data);
    if (!r) return;
    if (!r.known && !awaitingAnswer) {
      /* The end of an answer this page never saw start (the page was loaded
         mid-answer): nothing to show. */
      updateControls();
      return;
    }
    awaitingAnswer = false;
    finishAnswer(r.id, r.text, r.info, r.known);
    updateControls();
  }

  function onUserMessage(data) {
    if (!data || typeof data.content !== 'string') return;
    if (pendingSend && data.content === pendingSend.text) return; /* our own, the ack adds it */
    appendUserMessage(data.id, data.content);
    if (!assembler.isStreaming()) startAnswering();
  }

  /* A dropped connection cancels the generation on the server; mark what
     was streaming as interrupted so nothing waits forever. */
  function connectionLost() {
    var open = assembler.abortAll();
    for (var i = 0; i < open.length; i++) {
      finishAnswer(open[i].id, open[i].text, { finish_reason: 'disconnected' }, true);
    }
    awaitingAnswer = false;
    updateControls();
  }

  function connect() {
    if (typeof window.io !== 'function') {
      setStatus('offline', 'Live connection unavailable');
      return;
    }
    socket = window.io({ reconnectionDelayMax: 10000 });
    socket.on('connect', function () {
      setStatus('connected', 'Connected');
      if (/^Not connected/.test(els.error.textContent)) showError('');
    });
    socket.on('disconnect', function (reason) {
      connectionLost();
      if (reason === 'io server disconnect') {
        /* The server closed us (restart, or session gone): try once more;
           an expired session then answers connect_error "unauthorized". */
        socket.connect();
      }
      setStatus('reconnecting', 'Reconnecting…');
    });
    socket.on('connect_error', function (err) {
      if (err && err.message === 'unauthorized') {
        setStatus('unauthorized', 'Session expired.', { href: '/login?next=/', text: 'Log in' });
        return;
      }
      if (!socket.active) {
        setStatus('offline', 'Offline.', { href: '/', text: 'Reload' });
      } else {
        setStatus('reconnecting', 'Reconnecting…');
      }
    });
    if (socket.io && typeof socket.io.on === 'function') {
      socket.io.on('reconnect_attempt', function () { setStatus('reconnecting', 'Reconnecting…'); });
      socket.io.on('reconnect_failed', function () {
        setStatus('offline', 'Offline.', { href: '/', text: 'Reload' });
      });
    }
    socket.on('response_chunk', onChunk);
    socket.on('response_end', onEnd);
    socket.on('user_message', onUserMessage);
  }

  /* ---------- events ---------- */

  els.form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    send();
  });
  els.input.addEventListener('keydown', function (ev) {
    if (core.keyAction(ev) === 'send') {
      ev.preventDefault();
      send();
    }
  });
  els.input.addEventListener('input', function () {
    updateCounter();
    autoGrow();
    if (els.error.textContent && !/^Not connected/.test(els.error.textContent)) showError('');
  });
  els.stop.addEventListener('click', function () {
    if (!socket || !socket.connected) return;
    socket.emit('stop_generation');
    els.stop.disabled = true;
    els.stopLabel.textContent = 'Stopping…';
  });
  els.scroll.addEventListener('scroll', function () {
    stick = core.isNearBottom(els.scroll.scrollTop, els.scroll.clientHeight, els.scroll.scrollHeight);
    if (stick) els.jump.hidden = true;
  }, { passive: true });
  els.jump.addEventListener('click', scrollToBottom);

  /* ---------- start ---------- */

  var saved = root.querySelectorAll('[data-markdown]');
  for (var i = 0; i < saved.length; i++) {
    setMarkdown(saved[i], saved[i].textContent);
    addCopyButtons(saved[i]);
  }
  updateCounter();
  updateControls();
  scrollToBottom();
  connect();
  if (modelReady) els.input.focus();
}());
