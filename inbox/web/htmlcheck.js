// The HTML check: the open message's HTML part against the caniemail.com
// data (caniemail.json, MIT, from the npm package `caniemail`; refreshed by
// scripts/update-caniemail.sh).  Lists each feature the HTML uses that some
// mail client family does not support, with the clients and the first line
// where it appears, and a score per family, from
// GET /api/scalr/messages/{id}/htmlcheck (http_htmlcheck.c), on request;
// values go in with textContent only; app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function render(r) {
    const fams = Object.keys(r.scores).sort((a, b) => r.scores[a].score - r.scores[b].score);
    $('hc-scores').replaceChildren(...fams.map((f) =>
      el('span', { class: 'hc-score' + (r.scores[f].score < 80 ? ' hc-low' : ''), 'data-family': f },
        r.scores[f].name + ' ' + r.scores[f].score + '%')));
    const who = (list) => list.map((c) => c.name + ' (' + c.platforms.join(', ') + ')').join('; ');
    $('hc-rows').replaceChildren(...r.features.map((x) => {
      const tr = el('tr', { 'data-slug': x.slug });
      const name = el('td', { class: 'hc-feature' });
      name.append(el('a', { href: x.url, target: '_blank', rel: 'noopener noreferrer' }, x.title));
      tr.append(name, el('td', { class: 'hc-line' }, x.line),
        el('td', { class: 'hc-bad' }, who(x.unsupported)), el('td', { class: 'hc-partial' }, who(x.partial)));
      return tr;
    }));
    $('hc-note').textContent = r.found + ' features found, ' + r.features.length +
      ' not supported everywhere (caniemail data of ' + r.data_date + ').';
  }

  async function run() {
    const m = /\/api\/v1\/messages\/(\d+)\/download$/.exec($('m-download').getAttribute('href') || '');
    if (!m) return;
    $('hc-note').textContent = 'Checking…';
    $('hc-rows').replaceChildren();
    $('hc-scores').replaceChildren();
    try {
      const res = await fetch('/api/scalr/messages/' + m[1] + '/htmlcheck', { headers: { Accept: 'application/json' } });
      const j = await res.json();
      if (!res.ok) throw new Error(j.error || res.status);
      render(j);
    } catch (e) {
      $('hc-note').textContent = e.message === 'this message has no HTML part' ? 'This message has no HTML part.' : 'Failed: ' + e.message;
    }
  }

  function init() {
    if (!$('m-download')) return;
    const btn = el('button', { class: 'btn', id: 'm-htmlcheck', type: 'button' }, 'HTML check');
    $('m-download').before(btn);
    const dlg = el('dialog', { id: 'htmlcheck', class: 'confirm links', 'aria-labelledby': 'hc-title' });
    const table = el('table', { class: 'lk-table' });
    const head = el('tr');
    for (const h of ['Feature', 'Line', 'Not supported in', 'Partly supported in']) head.append(el('th', null, h));
    table.append(el('thead'), el('tbody', { id: 'hc-rows' }));
    table.firstChild.append(head);
    const scroll = el('div', { class: 'lk-scroll' });
    scroll.append(table);
    const close = el('button', { class: 'btn', type: 'button', id: 'hc-close' }, 'Close');
    const buttons = el('div', { class: 'confirm-buttons' });
    buttons.append(close);
    dlg.append(el('h2', { id: 'hc-title', class: 'release-title' }, 'HTML check (caniemail.com)'),
      el('div', { id: 'hc-scores', class: 'hc-scores' }), scroll,
      el('p', { id: 'hc-note', class: 'lk-note', role: 'status' }), buttons);
    document.body.append(dlg);
    btn.addEventListener('click', () => { dlg.showModal(); run(); });
    close.addEventListener('click', () => dlg.close());
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
