/*
 * site.js - small behaviours shared by every page (loaded by base.html):
 *   - the close button of flashed messages;
 *   - forms with data-confirm ask before they are sent (e.g. Clear discussion);
 *   - a POST form's submit buttons are disabled once it is sent, so a double
 *     click does not post twice (the rate limits allow one per second);
 *   - textareas with data-counter="N" show "n / N" under them;
 *   - <time data-ts="unix seconds"> shows the time in the reader's time zone
 *     (the server renders UTC as a fallback); data-format="date" for dates.
 * The CSP forbids inline handlers, so all of this is attached here.
 */
(function () {
  'use strict';

  function each(selector, fn) {
    var nodes = document.querySelectorAll(selector);
    for (var i = 0; i < nodes.length; i++) fn(nodes[i]);
  }

  function countChars(text) {
    var n = 0;
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++;
      n++;
    }
    return n;
  }

  function formatTs(ts, dateOnly) {
    var d = new Date(ts * 1000);
    if (!isFinite(ts) || isNaN(d.getTime())) return null;
    if (dateOnly) return d.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
    var time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' }) + ', ' + time;
  }

  document.addEventListener('click', function (ev) {
    var button = ev.target.closest ? ev.target.closest('[data-dismiss="flash"]') : null;
    if (!button) return;
    var flash = button.closest('.flash');
    if (!flash) return;
    var box = flash.parentNode;
    flash.remove();
    if (box && box.children.length === 0) box.remove();
  });

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      ev.preventDefault();
      return;
    }
    if ((form.getAttribute('method') || '').toLowerCase() !== 'post') return;
    /* After the submission has started, so the button's own value still goes. */
    setTimeout(function () {
      if (ev.defaultPrevented) return;
      each('button[type="submit"]', function (b) {
        if (b.form === form && !b.disabled) {
          b.disabled = true;
          b.setAttribute('data-sent', '');
        }
      });
    }, 0);
  });

  /* Coming back with the Back button shows the page from cache: enable again. */
  window.addEventListener('pageshow', function (ev) {
    if (!ev.persisted) return;
    each('button[data-sent]', function (b) {
      b.disabled = false;
      b.removeAttribute('data-sent');
    });
  });

  each('textarea[data-counter]', function (area) {
    var max = parseInt(area.getAttribute('data-counter'), 10);
    if (!(max > 0)) return;
    var out = document.createElement('p');
    out.className = 'char-counter';
    out.setAttribute('aria-live', 'polite');
    area.insertAdjacentElement('afterend', out);
    function update() {
      var n = countChars(area.value);
      out.textContent = n + ' / ' + max;
      out.classList.toggle('is-over', n > max);
    }
    area.addEventListener('input', update);
    update();
  });

  each('time[data-ts]', function (t) {
    var ts = Number(t.getAttribute('data-ts'));
    var label = formatTs(ts, t.getAttribute('data-format') === 'date');
    if (!label) return;
    t.textContent = label;
    t.setAttribute('datetime', new Date(ts * 1000).toISOString());
  });
}());
