// The Templates view (`scalr-email inbox --templates DIR`): every template
// rendered with its sample.json: the subject, the HTML part in a sandboxed
// frame (served by the inbox with the same CSP as a message's HTML), the text
// part.  It polls, so an edit to a template shows up within two seconds.
// Like app.js, every value is inserted with textContent, never as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  const t = { open: false, selected: null, version: null, timer: 0 };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  async function get(path) {
    const res = await fetch(path, { headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || res.status + ' ' + res.statusText);
    return body;
  }

  function build() {
    const bar = document.querySelector('.topbar');
    const btn = el('button', 'btn', 'Templates');
    btn.id = 'templates-toggle';
    btn.type = 'button';
    btn.setAttribute('aria-pressed', 'false');
    btn.setAttribute('aria-controls', 'templates-view');
    bar.insertBefore(btn, $('delete-all'));
    btn.addEventListener('click', () => show(!t.open));

    const sec = el('section', 'templates-view');
    sec.id = 'templates-view';
    sec.hidden = true;
    sec.setAttribute('aria-label', 'Templates');
    const head = el('div', 't-head');
    const where = el('span', 't-where muted');
    where.id = 't-where';
    head.append(el('h2', 't-title', 'Templates'), where);
    const err = el('p', 't-error');
    err.id = 't-error';
    err.setAttribute('role', 'alert');
    err.hidden = true;
    const list = el('ul', 't-list');
    list.id = 't-list';
    const detail = el('div', 't-detail');
    detail.id = 't-detail';
    const subj = el('h3', 't-subject');
    subj.id = 't-subject';
    const problem = el('p', 't-problem');
    problem.id = 't-problem';
    problem.hidden = true;
    const frame = document.createElement('iframe');
    frame.id = 't-frame';
    frame.title = 'HTML part of the template';
    frame.setAttribute('sandbox', 'allow-popups allow-popups-to-escape-sandbox');
    frame.setAttribute('referrerpolicy', 'no-referrer');
    frame.src = 'about:blank';
    const text = el('pre', 't-text');
    text.id = 't-text';
    detail.append(subj, problem, el('h4', null, 'HTML part'), frame, el('h4', null, 'Text part'), text);
    const body = el('div', 't-body');
    body.append(list, detail);
    sec.append(head, err, body);
    document.querySelector('main.panes').after(sec);
  }

  function show(open) {
    t.open = open;
    $('templates-view').hidden = !open;
    const queue = $('queue-view');
    if (open && queue) queue.hidden = true;
    document.querySelector('main.panes').hidden = open;
    $('templates-toggle').setAttribute('aria-pressed', String(open));
    clearInterval(t.timer);
    if (open) {
      load();
      t.timer = setInterval(load, POLL_MS);
    }
  }

  async function load() {
    let info;
    try {
      info = await get('/api/scalr/templates');
      $('t-error').hidden = true;
    } catch (e) {
      $('t-error').textContent = 'Templates: ' + e.message;
      $('t-error').hidden = false;
      return;
    }
    $('t-where').textContent = info.root;
    const list = $('t-list');
    list.replaceChildren();
    if (!t.selected && info.templates.length) t.selected = info.templates[0].name;
    for (const it of info.templates) {
      const li = el('li', 't-item' + (it.ok ? '' : ' t-bad'));
      li.tabIndex = 0;
      li.dataset.name = it.name;
      li.append(el('span', 't-name', it.name), el('span', 't-state', it.ok ? 'ok' : 'error'));
      if (it.name === t.selected) li.classList.add('t-selected');
      const pick = () => { t.selected = it.name; t.version = null; load(); };
      li.addEventListener('click', pick);
      li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pick(); });
      list.append(li);
    }
    const cur = info.templates.find((x) => x.name === t.selected);
    if (!cur) {
      $('t-subject').textContent = info.templates.length ? '' : 'No template in this folder.';
      return;
    }
    if (cur.version === t.version) return; // nothing changed: keep the frame as it is
    t.version = cur.version;
    $('t-subject').textContent = cur.ok ? cur.subject : cur.name;
    $('t-problem').textContent = cur.ok ? '' : cur.error + (cur.sample ? '' : ' (no sample.json)');
    $('t-problem').hidden = cur.ok;
    $('t-text').textContent = cur.ok ? cur.text : '';
    $('t-frame').src = cur.ok
      ? '/api/scalr/templates/' + encodeURIComponent(cur.name) + '/html?v=' + cur.version
      : 'about:blank';
  }

  async function init() {
    let info;
    try {
      info = await get('/api/scalr/templates');
    } catch (e) {
      return; // an inbox without the endpoints: nothing to add
    }
    if (!info || !info.enabled) return;
    build();
    if (location.hash === '#templates') show(true);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
