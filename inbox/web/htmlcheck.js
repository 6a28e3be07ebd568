// The HTML check: the open message's HTML part against the caniemail.com
// data (caniemail.json, MIT, from the npm package `caniemail`; refreshed by
// scripts/update-caniemail.sh).  Lists each feature the HTML uses that some
// mail client family does not support, with the clients and the first line
// where it appears, and a score per family.  Runs in the page, on request;
// values go in with textContent only; app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let data = null;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  // A regular expression for a feature, from its title; null: not checked.
  function pattern(f) {
    const t = f.title;
    let m;
    if (f.category === 'css') {
      if ((m = /^([a-z-]+)\s*:\s*([a-z-]+)$/.exec(t))) return new RegExp('(^|[\\s;{"\'])' + esc(m[1]) + '\\s*:\\s*' + esc(m[2]) + '\\b', 'i');
      if (/^[a-z-]+$/.test(t)) return new RegExp('(^|[\\s;{"\'])' + esc(t) + '\\s*:', 'i');
      if (/^::?[a-z-]+$/.test(t)) return new RegExp('[a-z0-9*\\])]' + esc(t) + '(?![a-z-])', 'i');
      if ((m = /^@media \(([a-z-]+)\)$/.exec(t))) return new RegExp('@media[^{]*' + esc(m[1]), 'i');
      if ((m = /^@([a-z-]+)$/.exec(t))) return new RegExp('@' + esc(m[1]) + '\\b', 'i');
      return null;
    }
    if (f.category === 'html') {
      if ((m = /^<([a-z0-9]+) type="([a-z-]+)"> element$/.exec(t))) return new RegExp('<' + m[1] + '\\b[^>]*type\\s*=\\s*["\']?' + m[2] + '\\b', 'i');
      if ((m = /^<([a-z0-9]+)> element$/.exec(t))) return new RegExp('<' + m[1] + '[\\s>/]', 'i');
      if ((m = /^([a-z-]+) attribute$/.exec(t))) return new RegExp('<[a-z][^>]*\\s' + esc(m[1]) + '\\s*=', 'i');
    }
    return null;
  }

  // The newest result per platform of one family: "y", "a", "n" or "u".
  function support(stats) {
    const out = {};
    for (const platform in stats || {}) {
      const versions = Object.keys(stats[platform]);
      const v = String(stats[platform][versions[versions.length - 1]] || 'u').trim()[0];
      out[platform] = v;
    }
    return out;
  }

  function lineOf(html, index) {
    let n = 1;
    for (let i = 0; i < index; i++) if (html.charCodeAt(i) === 10) n++;
    return n;
  }

  function check(html) {
    const families = data.nicenames.family;
    const found = [];
    for (const f of data.data) {
      const re = pattern(f);
      if (!re) continue;
      const m = re.exec(html);
      if (!m) continue;
      const bad = [];
      const partial = [];
      const perFamily = {};
      for (const fam in f.stats) {
        const s = support(f.stats[fam]);
        const plats = Object.keys(s);
        const no = plats.filter((p) => s[p] === 'n');
        const part = plats.filter((p) => s[p] === 'a');
        perFamily[fam] = no.length ? 'n' : part.length ? 'a' : plats.every((p) => s[p] === 'y') ? 'y' : 'u';
        const name = (families[fam] || fam);
        const pn = (p) => (data.nicenames.platform[p] || p);
        if (no.length) bad.push(name + ' (' + no.map(pn).join(', ') + ')');
        else if (part.length) partial.push(name + ' (' + part.map(pn).join(', ') + ')');
      }
      found.push({ f, line: lineOf(html, m.index + (m[1] ? m[1].length : 0)), bad, partial, perFamily });
    }
    const scores = {};
    for (const fam in families) {
      const rated = found.filter((x) => x.perFamily[fam] && x.perFamily[fam] !== 'u');
      if (!rated.length) continue;
      const ok = rated.reduce((a, x) => a + (x.perFamily[fam] === 'y' ? 1 : x.perFamily[fam] === 'a' ? 0.5 : 0), 0);
      scores[fam] = Math.round(100 * ok / rated.length);
    }
    return { found, scores };
  }

  function render(r) {
    const fams = Object.keys(r.scores).sort((a, b) => r.scores[a] - r.scores[b]);
    $('hc-scores').replaceChildren(...fams.map((f) =>
      el('span', { class: 'hc-score' + (r.scores[f] < 80 ? ' hc-low' : ''), 'data-family': f },
        (data.nicenames.family[f] || f) + ' ' + r.scores[f] + '%')));
    const issues = r.found.filter((x) => x.bad.length || x.partial.length);
    $('hc-rows').replaceChildren(...issues.map((x) => {
      const tr = el('tr', { 'data-slug': x.f.slug });
      const name = el('td', { class: 'hc-feature' });
      name.append(el('a', { href: x.f.url, target: '_blank', rel: 'noopener noreferrer' }, x.f.title));
      tr.append(name, el('td', { class: 'hc-line' }, x.line),
        el('td', { class: 'hc-bad' }, x.bad.join('; ')), el('td', { class: 'hc-partial' }, x.partial.join('; ')));
      return tr;
    }));
    $('hc-note').textContent = r.found.length + ' features found, ' + issues.length +
      ' not supported everywhere (caniemail data of ' + data.last_update_date + ').';
  }

  async function run() {
    const m = /\/api\/v1\/messages\/(\d+)\/download$/.exec($('m-download').getAttribute('href') || '');
    if (!m) return;
    $('hc-note').textContent = 'Checking…';
    try {
      if (!data) data = await (await fetch('/caniemail.json')).json();
      const msg = await (await fetch('/api/scalr/messages/' + m[1], { headers: { Accept: 'application/json' } })).json();
      if (msg.html === null || msg.html === undefined) {
        $('hc-rows').replaceChildren();
        $('hc-scores').replaceChildren();
        $('hc-note').textContent = 'This message has no HTML part.';
        return;
      }
      render(check(msg.html));
    } catch (e) {
      $('hc-note').textContent = 'Failed: ' + e.message;
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
