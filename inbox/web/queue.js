// The Queue view (`scalr-email inbox --queue URL`): counts by state, the
// messages waiting and why, one message's attempt history.  Read-only; data
// from /api/scalr/queue.  Like app.js, every value is inserted with
// textContent, never as HTML.  It adds its own button to the top bar and its
// own section after the mail panes, so app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const STATES = ['queued', 'leased', 'held', 'unknown', 'sent', 'failed', 'expired', 'cancelled'];
  const POLL_MS = 2000;
  const q = { open: false, filter: 'waiting', selected: null, timer: 0, info: null };

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

  // "in 5 s", "3 min ago": relative to the database's clock.
  function rel(ms, now) {
    if (!ms) return '';
    const d = Math.round((ms - now) / 1000);
    const a = Math.abs(d);
    const t = a < 60 ? a + ' s' : a < 3600 ? Math.round(a / 60) + ' min' : a < 86400
      ? Math.round(a / 3600) + ' h' : Math.round(a / 86400) + ' d';
    return d > 0 ? 'in ' + t : d === 0 ? 'now' : t + ' ago';
  }

  function stamp(ms) {
    return ms ? new Date(ms).toLocaleString() : '';
  }

  function build() {
    const bar = document.querySelector('.topbar');
    const btn = el('button', 'btn', 'Queue');
    btn.id = 'queue-toggle';
    btn.type = 'button';
    btn.setAttribute('aria-pressed', 'false');
    btn.setAttribute('aria-controls', 'queue-view');
    bar.insertBefore(btn, $('delete-all'));
    btn.addEventListener('click', () => show(!q.open));

    const sec = el('section', 'queue-view');
    sec.id = 'queue-view';
    sec.hidden = true;
    sec.setAttribute('aria-label', 'Queue');
    const head = el('div', 'q-head');
    const title = el('h2', 'q-title', 'Queue');
    const where = el('span', 'q-where muted');
    where.id = 'q-where';
    head.append(title, where);
    const counts = el('div', 'q-counts');
    counts.id = 'q-counts';
    for (const s of STATES) {
      const b = el('button', 'q-chip q-' + s);
      b.type = 'button';
      b.dataset.state = s;
      b.append(el('span', 'q-chip-name', s), ' ');
      const n = el('span', 'q-chip-n', '0');
      n.id = 'q-count-' + s;
      b.append(n);
      b.addEventListener('click', () => { setFilter(s); });
      counts.append(b);
    }
    const facts = el('p', 'q-facts muted');
    facts.id = 'q-facts';
    const providers = el('ul', 'q-providers');
    providers.id = 'q-providers';

    const tools = el('div', 'q-tools');
    const lab = el('label', null, 'Show ');
    const sel = el('select');
    sel.id = 'q-filter';
    for (const v of ['waiting', 'all'].concat(STATES)) {
      const o = el('option', null, v);
      o.value = v;
      sel.append(o);
    }
    sel.addEventListener('change', () => setFilter(sel.value));
    lab.append(sel);
    const refresh = el('button', 'btn', 'Refresh');
    refresh.type = 'button';
    refresh.id = 'q-refresh';
    refresh.addEventListener('click', () => load());
    tools.append(lab, refresh);

    const table = el('table', 'q-table');
    const thead = el('thead');
    const hr = el('tr');
    for (const h of ['#', 'State', 'To', 'Lane', 'Tries', 'Next run', 'Why']) hr.append(el('th', null, h));
    thead.append(hr);
    const tbody = el('tbody');
    tbody.id = 'q-rows';
    table.append(thead, tbody);
    const empty = el('p', 'q-empty muted', 'Nothing here.');
    empty.id = 'q-empty';
    empty.hidden = true;

    const detail = el('div', 'q-detail');
    detail.id = 'q-detail';
    detail.hidden = true;

    const err = el('p', 'q-error');
    err.id = 'q-error';
    err.setAttribute('role', 'alert');
    err.hidden = true;

    const body = el('div', 'q-body');
    const left = el('div', 'q-list');
    left.append(tools, table, empty);
    body.append(left, detail);
    sec.append(head, counts, facts, providers, err, body);
    document.querySelector('main.panes').after(sec);
  }

  function show(open) {
    q.open = open;
    $('queue-view').hidden = !open;
    document.querySelector('main.panes').hidden = open;
    $('queue-toggle').setAttribute('aria-pressed', String(open));
    clearInterval(q.timer);
    if (open) {
      load();
      q.timer = setInterval(load, POLL_MS);
    }
  }

  function setFilter(v) {
    q.filter = v;
    $('q-filter').value = v;
    for (const b of $('q-counts').children) b.classList.toggle('q-on', b.dataset.state === v);
    load();
  }

  function fail(e) {
    const p = $('q-error');
    p.textContent = 'Queue: ' + e.message;
    p.hidden = false;
  }

  async function load() {
    try {
      const info = await get('/api/scalr/queue');
      q.info = info;
      const st = info.status;
      $('q-where').textContent = info.queue;
      for (const s of STATES) $('q-count-' + s).textContent = String(st.counts[s] || 0);
      const facts = [];
      if (st.oldest_queued_ms) facts.push('oldest queued ' + Math.round(st.oldest_queued_ms / 1000) + ' s');
      if (st.next_run_at) facts.push('next run ' + rel(st.next_run_at, st.now));
      facts.push(st.sent_last_minute + ' sent in the last minute');
      $('q-facts').textContent = facts.join(' · ');
      const pl = $('q-providers');
      pl.replaceChildren();
      for (const p of info.providers) {
        if (!p.held && !(p.paused_until && p.paused_until > st.now)) continue;
        const li = el('li', 'q-provider');
        li.textContent = (p.provider || '(default provider)') + ': ' +
          (p.held ? 'held' : 'paused until ' + stamp(p.paused_until)) +
          (p.reason ? ' — ' + p.reason : '');
        pl.append(li);
      }
      const path = '/api/scalr/queue/messages' + (q.filter === 'all' ? '' : '?state=' + encodeURIComponent(q.filter));
      const list = await get(path);
      renderRows(list.items, st.now);
      if (q.selected) await loadDetail(q.selected);
      $('q-error').hidden = true;
    } catch (e) {
      fail(e);
    }
  }

  function renderRows(items, now) {
    const tb = $('q-rows');
    tb.replaceChildren();
    for (const it of items) {
      const tr = el('tr', 'q-row');
      tr.dataset.id = String(it.id);
      tr.tabIndex = 0;
      if (it.id === q.selected) tr.classList.add('q-selected');
      const stateCell = el('td');
      stateCell.append(el('span', 'q-state q-' + it.state, it.state));
      tr.append(el('td', 'q-id', it.id), stateCell, el('td', 'q-to', it.rcpt_to.join(', ')),
        el('td', null, it.lane + (it.tenant ? ' · ' + it.tenant : '')),
        el('td', 'q-tries', it.attempts + (it.max_attempts ? '/' + it.max_attempts : '')),
        el('td', 'q-run', it.state === 'queued' ? rel(it.run_at, now) : ''),
        el('td', 'q-why', it.last_error || ''));
      const open = () => { q.selected = it.id; loadDetail(it.id); markSelected(); };
      tr.addEventListener('click', open);
      tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
      tb.append(tr);
    }
    $('q-empty').hidden = items.length > 0;
  }

  function markSelected() {
    for (const tr of $('q-rows').children) tr.classList.toggle('q-selected', tr.dataset.id === String(q.selected));
  }

  async function loadDetail(id) {
    let d;
    try {
      d = await get('/api/scalr/queue/messages/' + id);
    } catch (e) {
      fail(e);
      return;
    }
    const now = q.info ? q.info.status.now : Date.now();
    const it = d.item;
    const box = $('q-detail');
    box.replaceChildren();
    box.append(el('h3', 'q-detail-title', 'Message ' + it.id));
    const dl = el('dl', 'meta');
    const row = (k, v) => { if (v !== null && v !== undefined && v !== '') dl.append(el('dt', null, k), el('dd', null, v)); };
    row('State', it.state);
    row('Why', it.last_error);
    row('From', it.mail_from);
    row('To', it.rcpt_to.join(', '));
    row('Message-ID', it.message_id);
    row('Lane', it.lane + (it.tenant ? ' · tenant ' + it.tenant : ''));
    row('Provider', it.provider);
    row('Key', it.idempotency_key);
    row('Size', it.size + ' B');
    row('Created', stamp(it.created_at));
    row('Next run', it.state === 'queued' ? stamp(it.run_at) + ' (' + rel(it.run_at, now) + ')' : '');
    row('Expires', stamp(it.expire_at));
    row('Finished', stamp(it.finished_at));
    row('Lease', it.lease_owner ? it.lease_owner + ' until ' + stamp(it.lease_until) : '');
    box.append(dl);
    box.append(el('h4', null, 'Attempts (' + d.attempts.length + ')'));
    if (!d.attempts.length) {
      box.append(el('p', 'muted', 'No attempt yet.'));
      box.hidden = false;
      return;
    }
    const t = el('table', 'q-table q-attempts');
    const h = el('tr');
    for (const c of ['#', 'When', 'Outcome', 'Stage', 'Reply', 'Recipient', 'Message']) h.append(el('th', null, c));
    const th = el('thead');
    th.append(h);
    const tb = el('tbody');
    tb.id = 'q-attempts';
    for (const a of d.attempts) {
      const tr = el('tr');
      const reply = [a.smtp_code, a.enhanced, a.server_text].filter((x) => x).join(' ');
      tr.append(el('td', null, a.n), el('td', null, a.at ? new Date(a.at).toLocaleTimeString() : ''), el('td', 'q-outcome', a.outcome),
        el('td', null, a.stage), el('td', 'q-reply', reply), el('td', null, a.recipient),
        el('td', null, a.message));
      tr.title = 'worker ' + a.worker;
      tb.append(tr);
    }
    t.append(th, tb);
    box.append(t);
    box.hidden = false;
  }

  async function init() {
    let info;
    try {
      info = await get('/api/scalr/queue');
    } catch (e) {
      return; // an inbox without the queue endpoints: nothing to add
    }
    if (!info || !info.enabled) return;
    build();
    if (location.hash === '#queue') show(true);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
