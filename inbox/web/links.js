// The link check: a Links button next to Download opens a list of every
// link and image of the open message (GET /api/scalr/messages/{id}/links),
// with http:// links and links whose text shows another domain flagged.
// Nothing is fetched until "Check links" is pressed (POST .../links/check).
// Values go in with textContent only; app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const FLAGS = { insecure: 'http:// (not encrypted)', 'text-mismatch': 'the text shows another domain' };

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function openId() {
    const m = /\/api\/v1\/messages\/(\d+)\/download$/.exec($('m-download').getAttribute('href') || '');
    return m ? Number(m[1]) : null;
  }

  function render(data) {
    const rows = data.links.map((l) => {
      const tr = el('tr', { class: 'lk-row' + (l.flags.length ? ' lk-flagged' : '') });
      const status = l.status !== undefined ? String(l.status) : (l.error || (data.checked ? '' : '–'));
      const st = el('td', { class: 'lk-status' + (l.status >= 200 && l.status < 400 ? ' lk-ok' : (data.checked ? ' lk-bad' : '')) }, status);
      tr.append(
        el('td', { class: 'lk-kind' }, l.kind + (l.part === 'text' ? ' (text)' : '')),
        el('td', { class: 'lk-url' }, l.url),
        el('td', { class: 'lk-text' }, l.text || ''),
        el('td', { class: 'lk-flags' }, l.flags.map((f) => FLAGS[f] || f).join('; ')),
        st);
      return tr;
    });
    $('lk-rows').replaceChildren(...rows);
    $('lk-none').hidden = data.links.length > 0;
  }

  async function load(check) {
    const id = openId();
    if (id === null) return;
    $('lk-note').textContent = check ? 'Checking each link from the inbox…' : '';
    $('lk-check').disabled = true;
    try {
      const res = await fetch('/api/scalr/messages/' + id + '/links' + (check ? '/check' : ''),
        { method: check ? 'POST' : 'GET', headers: { Accept: 'application/json' } });
      const j = await res.json();
      if (!res.ok) throw new Error(j.error || res.status);
      render(j);
      $('lk-note').textContent = check ? 'Checked.' : 'Not checked yet: nothing is fetched until you ask.';
    } catch (e) {
      $('lk-note').textContent = 'Failed: ' + e.message;
    }
    $('lk-check').disabled = false;
  }

  function init() {
    if (!$('m-download')) return;
    const btn = el('button', { class: 'btn', id: 'm-links', type: 'button' }, 'Links');
    $('m-download').before(btn);
    const dlg = el('dialog', { id: 'links', class: 'confirm links', 'aria-labelledby': 'lk-title' });
    const table = el('table', { class: 'lk-table' });
    const head = el('tr');
    for (const h of ['Kind', 'URL', 'Text', 'Flags', 'Status']) head.append(el('th', null, h));
    table.append(el('thead'), el('tbody', { id: 'lk-rows' }));
    table.firstChild.append(head);
    const buttons = el('div', { class: 'confirm-buttons' });
    const close = el('button', { class: 'btn', type: 'button', id: 'lk-close' }, 'Close');
    const check = el('button', { class: 'btn btn-primary', type: 'button', id: 'lk-check' }, 'Check links');
    buttons.append(close, check);
    dlg.append(el('h2', { id: 'lk-title', class: 'release-title' }, 'Links and images'),
      el('div', { class: 'lk-scroll' }), el('p', { id: 'lk-none', class: 'none', hidden: '' }, 'No links.'),
      el('p', { id: 'lk-note', class: 'lk-note', role: 'status' }), buttons);
    dlg.querySelector('.lk-scroll').append(table);
    document.body.append(dlg);
    btn.addEventListener('click', () => {
      $('lk-rows').replaceChildren();
      dlg.showModal();
      load(false);
    });
    close.addEventListener('click', () => dlg.close());
    check.addEventListener('click', () => load(true));
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
