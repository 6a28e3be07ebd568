// Read state and tags.  A message is marked read when it is opened
// (PUT /api/scalr/messages/{id}/read); its tags are edited under the message
// header (PUT .../tags); a tag chip in the list searches by that tag.  The
// list itself (bold unread rows, chips, the unread count in the title) is
// drawn by app.js from the list API.  Values go in with textContent only.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let openId = null;
  let tags = [];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function send(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let j = null;
    try { j = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((j && j.error) || res.status + ' ' + res.statusText);
    return j;
  }

  function draw(box) {
    const list = box.querySelector('.tag-list');
    list.replaceChildren(...tags.map((t) => {
      const chip = el('span', 'tag', t);
      const x = el('button', 'tag-remove', '×');
      x.type = 'button';
      x.setAttribute('aria-label', 'Remove tag ' + t);
      x.addEventListener('click', () => save(box, tags.filter((o) => o !== t)));
      chip.append(x);
      return chip;
    }));
  }

  async function save(box, next) {
    const id = openId;
    try {
      const j = await send('PUT', '/api/scalr/messages/' + id + '/tags', { tags: next });
      if (id === openId) {
        tags = j.tags;
        draw(box);
      }
      box.querySelector('.tag-error').hidden = true;
    } catch (e) {
      const err = box.querySelector('.tag-error');
      err.textContent = e.message;
      err.hidden = false;
    }
  }

  function build() {
    const box = el('div', 'tag-box');
    box.id = 'm-tags';
    const label = el('span', 'tag-label', 'Tags');
    const list = el('span', 'tag-list');
    const input = el('input', 'tag-input');
    input.id = 'm-tag-input';
    input.type = 'text';
    input.placeholder = 'Add a tag…';
    input.maxLength = 64;
    input.setAttribute('aria-label', 'Add a tag');
    const err = el('span', 'tag-error');
    err.hidden = true;
    err.setAttribute('role', 'alert');
    box.append(label, list, input, err);
    input.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      e.stopPropagation();
      const t = input.value.trim();
      if (!t) return;
      input.value = '';
      if (!tags.some((o) => o.toLowerCase() === t.toLowerCase())) save(box, tags.concat([t]));
    });
    input.addEventListener('keydown', (e) => e.stopPropagation()); // no list shortcuts while typing
    document.querySelector('#message .meta').after(box);
    return box;
  }

  async function opened(box) {
    const m = /\/api\/v1\/messages\/(\d+)\/download$/.exec($('m-download').getAttribute('href') || '');
    if (!m) return;
    const id = Number(m[1]);
    if (id === openId) return;
    openId = id;
    tags = [];
    draw(box);
    try {
      const j = await send('GET', '/api/scalr/messages/' + id + '/tags');
      if (id !== openId) return;
      tags = j.tags;
      draw(box);
      if (!j.read) await send('PUT', '/api/scalr/messages/' + id + '/read', { read: true });
    } catch (e) { /* deleted meanwhile: app.js shows that */ }
  }

  function init() {
    if (!$('message') || !$('m-download')) return;
    const box = build();
    new MutationObserver(() => opened(box))
      .observe($('m-download'), { attributes: true, attributeFilter: ['href'] });
    // A tag chip in the list: search by that tag.
    $('list').addEventListener('click', (e) => {
      const chip = e.target.closest('.item .tag');
      if (!chip) return;
      e.stopPropagation();
      $('search-kind').value = 'tag';
      $('search').value = chip.textContent;
      $('search').dispatchEvent(new Event('input', { bubbles: true }));
    }, true);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
