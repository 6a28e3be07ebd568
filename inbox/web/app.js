// scalr-email inbox UI.  Plain DOM, no framework.  Everything that comes from a
// message (subjects, addresses, bodies, headers) is inserted with textContent,
// never as HTML; the HTML part is only shown in a sandboxed frame whose URL is
// served with a Content-Security-Policy that blocks scripts and remote loads.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;

  const state = {
    items: [],
    total: 0,
    limit: PAGE,
    kind: 'containing',
    query: '',
    activeId: null, // the list row with the keyboard focus
    openId: null, // the message shown on the right
    msg: null,
    tab: 'html', // the tab the reader chose; shown when the message has it
    rawFor: null,
    seen: new Set(),
    loaded: false,
  };

  // ---- helpers ----

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svgIcon(cls, path) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('class', cls);
    svg.setAttribute('aria-hidden', 'true');
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', path);
    svg.appendChild(p);
    return svg;
  }
  const CLIP = 'M21 11.5l-8.6 8.6a5 5 0 01-7.1-7.1l8.6-8.6a3.3 3.3 0 014.7 4.7l-8.6 8.6a1.7 1.7 0 01-2.4-2.4l7.9-7.9';

  async function api(path, opts) {
    const res = await fetch(path, Object.assign({ headers: { Accept: 'application/json' } }, opts));
    if (!res.ok) {
      let msg = res.status + ' ' + res.statusText;
      try {
        const j = await res.json();
        if (j && j.error) msg = j.error;
      } catch (e) { /* not JSON */ }
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    const type = res.headers.get('Content-Type') || '';
    return type.startsWith('application/json') ? res.json() : res.text();
  }

  let toastTimer = 0;
  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  function humanSize(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + ' KB';
    return (n / 1048576).toFixed(1) + ' MB';
  }

  function shortTime(iso) {
    const d = new Date(iso);
    const now = new Date();
    if (d.toDateString() === now.toDateString())
      return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const opts = { month: 'short', day: 'numeric' };
    if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
    return d.toLocaleDateString([], opts);
  }

  // "Ann Example <ann@example.com>" -> "Ann Example"; a bare address stays.
  function displayName(value) {
    const v = (value || '').trim();
    const m = /^"?([^"<]*?)"?\s*<[^>]*>\s*(,.*)?$/.exec(v);
    if (m && m[1].trim()) return m[1].trim() + (m[2] ? ' …' : '');
    return v;
  }

  // ---- DKIM: the verdict the inbox made when the message arrived ----

  // A row's badge for "pass", "fail", "nokey", "none", or null (a big
  // message, checked when it is opened).
  const DKIM = {
    pass: ['DKIM pass', 'every DKIM signature verifies'],
    fail: ['DKIM fail', 'a DKIM signature does not verify: open the message to see why'],
    nokey: ['DKIM no key', 'signed, but no key record for its selector was given (--dkim-record)'],
    none: ['no DKIM', 'not DKIM-signed'],
  };
  function dkimBadge(status) {
    const [text, why] = DKIM[status] || ['DKIM ?', 'checked when the message is opened'];
    const b = el('span', 'dkim dkim-' + (DKIM[status] ? status : 'unknown'), text);
    b.dataset.dkim = status || 'unknown';
    b.title = why;
    return b;
  }

  // The message view: one line per signature, d= s= a=, the verdict and why.
  function renderDkim(v) {
    const box = $('m-dkim');
    if (!v) {
      box.replaceChildren(el('span', 'muted', 'not checked'));
      return;
    }
    if (!v.signatures.length) {
      box.replaceChildren(dkimBadge('none'), el('span', 'muted', ' not signed'));
      return;
    }
    const rows = v.signatures.map((s) => {
      const missing = !s.ok && /^no key record/.test(s.why || '');
      const li = el('li', 'dkim-sig');
      li.dataset.ok = String(s.ok);
      li.append(dkimBadge(s.ok ? 'pass' : missing ? 'nokey' : 'fail'));
      li.append(el('code', 'dkim-tags', 'd=' + s.domain + ' s=' + s.selector + ' a=' + s.algorithm));
      if (!s.ok) li.append(el('span', 'dkim-why', s.why));
      for (const w of s.warnings || []) li.append(el('span', 'dkim-warn', '⚠ ' + w));
      return li;
    });
    const ul = el('ul', 'dkim-sigs');
    ul.append(...rows);
    const parts = [ul];
    if (!v.records)
      parts.push(el('p', 'dkim-note muted',
        'No key records given: start the inbox with --dkim-record FILE to check the keys.'));
    box.replaceChildren(...parts);
  }

  // ---- the list ----

  let loadSeq = 0;
  async function loadList() {
    const seq = ++loadSeq;
    const params = new URLSearchParams({ start: '0', limit: String(state.limit) });
    if (state.query) {
      params.set('kind', state.kind);
      params.set('query', state.query);
    }
    let data;
    try {
      data = await api('/api/scalr/messages?' + params.toString());
    } catch (e) {
      toast('Could not load messages: ' + e.message);
      return;
    }
    if (seq !== loadSeq) return; // a newer load is under way
    const fresh = new Set();
    for (const m of data.items) {
      if (state.loaded && !state.seen.has(m.id)) fresh.add(m.id);
      state.seen.add(m.id);
    }
    state.loaded = true;
    state.items = data.items;
    state.total = data.total;
    state.unread = data.unread || 0;
    const st = data.store || {};
    $('dropped').hidden = !st.dropped;
    if (st.dropped)
      $('dropped').textContent = st.dropped + ' older message' + (st.dropped === 1 ? ' was' : 's were') +
        ' dropped to stay under --max-memory (' + humanSize(st.max_memory) +
        '). Start the inbox with --db FILE to keep everything.';
    renderList(fresh);
    if (state.openId !== null && !state.items.some((m) => m.id === state.openId)) checkOpenStillThere();
  }

  function renderList(fresh) {
    const list = $('list');
    const hadFocus = list.contains(document.activeElement);
    const rows = state.items.map((m) => row(m, fresh.has(m.id)));
    list.replaceChildren(...rows);
    if (!state.items.some((m) => m.id === state.activeId))
      state.activeId = state.items.length ? state.items[0].id : null;
    markActive(hadFocus);

    const n = state.total;
    $('count').textContent = state.query
      ? n + (n === 1 ? ' match' : ' matches')
      : n + (n === 1 ? ' message' : ' messages');
    document.title = (state.unread ? '(' + state.unread + ') ' : '') + 'Inbox · scalr-email';
    const empty = state.items.length === 0;
    $('empty').hidden = !empty;
    if (empty) {
      $('empty-title').textContent = state.query ? 'No matches' : 'No messages yet';
      $('empty-text').textContent = state.query
        ? 'Nothing matches “' + state.query + '”.'
        : "Mail sent to this inbox's SMTP port shows up here at once.";
    }
    $('more').hidden = state.items.length >= state.total;
    $('delete-all').disabled = state.total === 0 && !state.query;
  }

  function row(m, isFresh) {
    const li = el('li', 'item' + (isFresh ? ' fresh' : '') + (m.read === false ? ' unread' : ''));
    li.id = 'msg-' + m.id;
    li.dataset.id = String(m.id);
    li.setAttribute('role', 'option');
    li.setAttribute('aria-selected', String(m.id === state.openId));
    li.tabIndex = -1;

    const from = el('span', 'from', displayName(m.from) || m.mail_from || '(no sender)');
    from.title = m.from || m.mail_from;
    const time = el('time', 'time', shortTime(m.created));
    time.dateTime = m.created;
    time.title = new Date(m.created).toLocaleString();
    const subject = m.subject
      ? el('span', 'subject', m.subject)
      : el('span', 'subject nosubject', '(no subject)');
    subject.title = m.subject;
    const sub = el('span', 'sub');
    const to = el('span', 'to', 'to ' + (m.to || m.rcpt));
    to.title = m.to || m.rcpt;
    sub.append(to);
    if (m.has_attachments) {
      const clip = svgIcon('clip', CLIP);
      clip.setAttribute('aria-hidden', 'false');
      clip.setAttribute('role', 'img');
      clip.setAttribute('aria-label', 'has attachments');
      sub.append(clip);
    }
    if (m.warning) {
      const warn = el('span', 'bare', '⚠');
      warn.title = m.warning;
      warn.setAttribute('role', 'img');
      warn.setAttribute('aria-label', m.warning);
      sub.append(warn);
    }
    if (m.dkim !== undefined) sub.append(dkimBadge(m.dkim));
    for (const t of m.tags || []) {
      const chip = el('span', 'tag', t);
      chip.title = 'Show messages tagged “' + t + '”';
      sub.append(chip);
    }
    sub.append(el('span', 'size', humanSize(m.size)));
    if (m.read === false) li.setAttribute('aria-description', 'unread');
    li.append(from, time, subject, sub);
    return li;
  }

  // Roving focus: only the active row is in the tab order.
  function markActive(focus) {
    for (const li of $('list').children) {
      const active = Number(li.dataset.id) === state.activeId;
      li.tabIndex = active ? 0 : -1;
      li.setAttribute('aria-selected', String(Number(li.dataset.id) === state.openId));
      if (active && focus) {
        li.focus({ preventScroll: true });
        li.scrollIntoView({ block: 'nearest' });
      }
    }
    $('list').tabIndex = state.items.length ? -1 : 0;
  }

  function moveActive(delta) {
    if (!state.items.length) return;
    let i = state.items.findIndex((m) => m.id === state.activeId);
    if (i < 0) i = 0;
    else i = Math.max(0, Math.min(state.items.length - 1, i + delta));
    state.activeId = state.items[i].id;
    markActive(true);
  }

  // ---- one message ----

  async function openMessage(id) {
    state.openId = id;
    state.activeId = id;
    markActive(false);
    let m;
    try {
      m = await api('/api/scalr/messages/' + id);
    } catch (e) {
      if (e.status === 404) closeMessage();
      toast('Could not open the message: ' + e.message);
      return;
    }
    if (state.openId !== id) return;
    state.msg = m;
    state.rawFor = null;
    renderMessage(m);
    // A big message gets its DKIM verdict when first opened: show it in its row too.
    const item = state.items.find((x) => x.id === id);
    const badge = document.querySelector('#msg-' + id + ' .dkim');
    if (item && item.dkim === null && m.dkim && badge) {
      item.dkim = m.dkim.status;
      badge.replaceWith(dkimBadge(item.dkim));
    }
  }

  function closeMessage() {
    state.openId = null;
    state.msg = null;
    $('message').hidden = true;
    $('placeholder').hidden = false;
    $('html-frame').src = 'about:blank';
    markActive(false);
  }

  async function checkOpenStillThere() {
    const id = state.openId;
    try {
      await api('/api/scalr/messages/' + id);
    } catch (e) {
      if (e.status === 404 && state.openId === id) closeMessage();
    }
  }

  function renderMessage(m) {
    $('placeholder').hidden = true;
    $('message').hidden = false;
    const subj = $('m-subject');
    subj.textContent = m.subject || '(no subject)';
    subj.classList.toggle('nosubject', !m.subject);
    $('m-warning').textContent = m.warning ? '⚠ ' + m.warning : '';
    $('m-warning').hidden = !m.warning;
    $('m-from').textContent = m.from || m.mail_from || '';
    $('m-to').textContent = m.to || m.rcpt.join(', ');
    $('m-cc').textContent = m.cc || '';
    $('m-cc').hidden = $('m-cc-label').hidden = !m.cc;
    const sent = m.date ? new Date(m.date) : null;
    const fmt = { dateStyle: 'medium', timeStyle: 'medium' };
    $('m-date').textContent = sent && !isNaN(sent) ? sent.toLocaleString([], fmt) : (m.date || '(none)');
    $('m-date').title = m.date || '';
    $('m-env').textContent = 'MAIL FROM <' + m.mail_from + '> → RCPT TO ' +
      m.rcpt.map((r) => '<' + r + '>').join(', ') + ' · ' + humanSize(m.size) +
      (m.helo ? ' · EHLO ' + m.helo : '');
    renderDkim(m.dkim);
    $('m-deliv-note').textContent = '';
    $('m-deliv-check').hidden = false;
    renderCalendar(m.calendar || []);
    $('m-download').href = '/api/v1/messages/' + m.id + '/download';
    $('m-download').setAttribute('download', m.id + '.eml');

    const hasHtml = m.html !== null;
    $('html-frame').hidden = !hasHtml;
    $('no-html').hidden = hasHtml;
    $('html-frame').src = hasHtml ? '/api/scalr/messages/' + m.id + '/html' : 'about:blank';
    $('text').textContent = m.text || '';
    $('text').hidden = m.text === null;
    $('no-text').hidden = m.text !== null;

    const tbody = $('headers');
    tbody.replaceChildren(...m.headers.map((h) => {
      const tr = el('tr');
      tr.append(el('th', null, h.name), el('td', null, h.value));
      return tr;
    }));

    const list = $('attachments');
    list.replaceChildren(...m.attachments.map((a) => attachmentRow(m.id, a)));
    $('no-att').hidden = m.attachments.length > 0;
    $('att-count').textContent = String(m.attachments.length);
    $('raw').textContent = '';

    showTab(state.tab === 'html' && !hasHtml ? 'text' : state.tab, false);
  }

  // "20270301T100000Z" (UTC) or "20270301T100000" / "20270301" (floating):
  // a readable date; anything else as it came.
  function icalDate(v) {
    const t = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$/.exec(v || '');
    if (!t) return v || '';
    const [, y, mo, d, h, mi, s, z] = t;
    if (h === undefined) return new Date(+y, mo - 1, +d).toLocaleDateString();
    const date = z ? new Date(Date.UTC(+y, mo - 1, +d, +h, +mi, +s))
      : new Date(+y, mo - 1, +d, +h, +mi, +s);
    return date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  }

  // A text/calendar part as a small card: what, when, where, who invites.
  function renderCalendar(cals) {
    const box = $('m-calendar');
    box.replaceChildren(...cals.map((c) => {
      const card = el('div', 'cal-card');
      card.append(el('div', 'cal-method', 'Calendar ' + (c.method || '').toLowerCase()));
      card.append(el('div', 'cal-summary', c.summary || '(no summary)'));
      const when = icalDate(c.start) + (c.end ? ' – ' + icalDate(c.end) : '');
      const dl = el('dl', 'cal-meta');
      const rows = [['When', when], ['Where', c.location], ['Organizer', c.organizer]];
      for (const [k, v] of rows) {
        if (!v) continue;
        dl.append(el('dt', null, k), el('dd', null, v));
      }
      card.append(dl);
      return card;
    }));
    box.hidden = cals.length === 0;
  }

  function attachmentRow(id, a) {
    const li = el('li', 'attachment');
    const url = '/api/scalr/messages/' + id + '/attachments/' + a.index;
    const name = a.filename || 'part-' + a.index;
    if (/^image\/(png|jpeg|gif|webp)$/.test(a.type)) {
      const img = el('img', 'thumb');
      img.alt = '';
      img.src = url;
      li.append(img);
    } else {
      const ext = (/\.([a-z0-9]{1,4})$/i.exec(name) || [null, a.type.split('/')[1] || 'file'])[1];
      li.append(el('span', 'file-icon', ext.slice(0, 4)));
    }
    const info = el('div', 'info');
    info.append(el('div', 'name', name));
    info.append(el('div', 'detail', a.type + ' · ' + humanSize(a.size) + (a.inline ? ' · inline' : '')));
    const link = el('a', 'btn', 'Download');
    link.href = url;
    link.setAttribute('download', name);
    link.setAttribute('aria-label', 'Download ' + name);
    li.append(info, link);
    return li;
  }

  // ---- tabs ----

  const TABS = ['html', 'text', 'headers', 'raw', 'attachments'];

  function selectTab(name, focus) {
    state.tab = name;
    showTab(name, focus);
  }

  function showTab(name, focus) {
    for (const t of TABS) {
      const tab = $('tab-' + t);
      const on = t === name;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      $('panel-' + t).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (name === 'raw') loadRaw();
  }

  async function loadRaw() {
    const m = state.msg;
    if (!m || state.rawFor === m.id) return;
    state.rawFor = m.id;
    $('raw').textContent = 'Loading…';
    try {
      const text = await api('/api/scalr/messages/' + m.id + '/raw');
      if (state.msg && state.msg.id === m.id) $('raw').textContent = text;
    } catch (e) {
      state.rawFor = null;
      $('raw').textContent = 'Could not load the source: ' + e.message;
    }
  }

  // ---- deleting ----

  function confirmBox(text, okLabel) {
    const dlg = $('confirm');
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      const done = (ok) => {
        dlg.removeEventListener('close', onClose);
        resolve(ok);
      };
      const onClose = () => done(dlg.returnValue === 'ok');
      dlg.addEventListener('close', onClose);
      dlg.returnValue = '';
      dlg.showModal();
      $('confirm-ok').focus();
    });
  }

  async function deleteMessage(id) {
    const m = state.items.find((x) => x.id === id) || (state.msg && state.msg.id === id ? state.msg : null);
    const label = m && m.subject ? '“' + m.subject + '”' : 'this message';
    const keepFocus = $('list').contains(document.activeElement);
    if (!(await confirmBox('Delete ' + label + '?', 'Delete'))) return;
    const i = state.items.findIndex((x) => x.id === id);
    const next = state.items[i + 1] || state.items[i - 1] || null;
    try {
      await api('/api/v1/messages/' + id, { method: 'DELETE' });
    } catch (e) {
      toast('Could not delete: ' + e.message);
      return;
    }
    const wasOpen = state.openId === id;
    state.activeId = next ? next.id : null;
    if (wasOpen) {
      if (next) openMessage(next.id);
      else closeMessage();
    }
    await loadList();
    if (keepFocus) markActive(true);
  }

  async function deleteAll() {
    const n = state.total;
    if (!(await confirmBox('Delete all ' + n + (n === 1 ? ' message' : ' messages') + '?', 'Delete all'))) return;
    try {
      await api('/api/v1/messages', { method: 'DELETE' });
    } catch (e) {
      toast('Could not delete: ' + e.message);
      return;
    }
    closeMessage();
    await loadList();
  }

  // ---- live updates ----

  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadList, 80);
  }

  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource('/api/scalr/events');
    const live = (on) => {
      $('live').classList.toggle('on', on);
      $('live-text').textContent = on ? 'Live' : 'Reconnecting…';
    };
    es.addEventListener('open', () => live(true));
    es.addEventListener('hello', scheduleRefresh); // also after a reconnect
    es.addEventListener('change', scheduleRefresh);
    es.addEventListener('error', () => live(false));
  }

  // ---- wiring ----

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName));
  }

  function init() {
    const list = $('list');
    list.addEventListener('click', (e) => {
      const li = e.target.closest('.item');
      if (li) openMessage(Number(li.dataset.id));
    });
    list.addEventListener('focusin', (e) => {
      const li = e.target.closest('.item');
      if (li) state.activeId = Number(li.dataset.id);
    });
    list.addEventListener('keydown', (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      switch (e.key) {
        case 'ArrowDown': case 'j': moveActive(1); break;
        case 'ArrowUp': case 'k': moveActive(-1); break;
        case 'Home': moveActive(-Infinity); break;
        case 'End': moveActive(Infinity); break;
        case 'Enter': case ' ':
          if (state.activeId !== null) openMessage(state.activeId);
          break;
        case 'Delete':
          if (state.activeId !== null) deleteMessage(state.activeId);
          break;
        default: return;
      }
      e.preventDefault();
    });

    document.addEventListener('keydown', (e) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || $('confirm').open) return;
      if (typing(e.target)) {
        if (e.key === 'Escape' && e.target === $('search')) {
          if ($('search').value) {
            $('search').value = '';
            onSearch();
          } else {
            markActive(true);
          }
          e.preventDefault();
        }
        return;
      }
      if (e.key === '/') {
        $('search').focus();
        e.preventDefault();
      } else if (e.key === 'j' || e.key === 'k') {
        moveActive(e.key === 'j' ? 1 : -1);
        e.preventDefault();
      } else if (e.key === 'Delete' && state.openId !== null) {
        deleteMessage(state.openId);
        e.preventDefault();
      } else if (e.key === 'Escape' && state.openId !== null) {
        markActive(true);
      }
    });

    const tablist = document.querySelector('[role="tablist"]');
    tablist.addEventListener('click', (e) => {
      const tab = e.target.closest('[role="tab"]');
      if (tab) selectTab(tab.dataset.tab, true);
    });
    tablist.addEventListener('keydown', (e) => {
      const shown = document.querySelector('[role="tab"][aria-selected="true"]');
      const i = TABS.indexOf(shown ? shown.dataset.tab : state.tab);
      let j;
      if (e.key === 'ArrowRight') j = (i + 1) % TABS.length;
      else if (e.key === 'ArrowLeft') j = (i + TABS.length - 1) % TABS.length;
      else if (e.key === 'Home') j = 0;
      else if (e.key === 'End') j = TABS.length - 1;
      else return;
      e.preventDefault();
      selectTab(TABS[j], true);
    });

    let searchTimer = 0;
    const onSearch = () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        state.query = $('search').value.trim();
        state.kind = $('search-kind').value;
        state.limit = PAGE;
        loadList();
      }, 200);
    };
    $('search').addEventListener('input', onSearch);
    $('search-kind').addEventListener('change', onSearch);
    $('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      onSearch();
    });

    $('more').addEventListener('click', () => {
      state.limit += PAGE;
      loadList();
    });
    $('delete-all').addEventListener('click', deleteAll);
    $('m-delete').addEventListener('click', () => {
      if (state.openId !== null) deleteMessage(state.openId);
    });
    // Computed on request only: would this message fail DMARC as sent?
    $('m-deliv-check').addEventListener('click', async () => {
      const id = state.openId;
      if (id === null) return;
      try {
        const d = await api('/api/scalr/messages/' + id + '/deliverability');
        if (state.openId !== id) return;
        $('m-deliv-note').textContent = (d.would_fail_dmarc ? '⚠ ' : '✓ ') + d.note;
        $('m-deliv-check').hidden = true;
      } catch (e) {
        $('m-deliv-note').textContent = 'cannot check: ' + e.message;
      }
    });
    $('confirm-cancel').addEventListener('click', () => $('confirm').close('cancel'));
    $('confirm-ok').addEventListener('click', () => $('confirm').close('ok'));

    selectTab('html', false);
    loadList();
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
