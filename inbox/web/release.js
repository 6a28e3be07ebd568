// Release: send the open message on to a real mailbox through the relay the
// inbox was started with (--release-env, --release-allow).  The button is
// added only when /api/scalr/release says release is on; the dialog shows
// the allow list and what the relay answered.  Like app.js, every value is
// inserted with textContent.  It finds the open message through the
// download link app.js sets, so app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function openId() {
    const m = /\/api\/v1\/messages\/(\d+)\/download$/.exec($('m-download').getAttribute('href') || '');
    return m ? Number(m[1]) : null;
  }

  function relayLine(r) {
    if (!r || !r.code) return '';
    return r.code + (r.enhanced ? ' ' + r.enhanced : '') + (r.text ? ' ' + r.text : '');
  }

  function build(info) {
    const btn = el('button', { class: 'btn', id: 'm-release', type: 'button' }, 'Release…');
    $('m-download').before(btn);
    const dlg = el('dialog', { id: 'release', class: 'confirm release', 'aria-labelledby': 'release-title' });
    const form = el('form', { method: 'dialog', id: 'release-form' });
    form.append(
      el('h2', { id: 'release-title', class: 'release-title' }, 'Release this message'),
      el('label', { for: 'release-to' }, 'Send it, as caught, to'),
      el('input', { id: 'release-to', type: 'text', autocomplete: 'email', spellcheck: 'false',
        placeholder: 'you@example.com, …', required: '' }),
      el('p', { class: 'release-allow', id: 'release-allow' }, 'Allowed: ' + info.allow.join(', ')),
      el('p', { class: 'release-result', id: 'release-result', role: 'status', hidden: '' }));
    const buttons = el('div', { class: 'confirm-buttons' });
    const cancel = el('button', { class: 'btn', type: 'button', id: 'release-cancel' }, 'Close');
    const send = el('button', { class: 'btn btn-primary', type: 'submit', id: 'release-send' }, 'Release');
    buttons.append(cancel, send);
    form.append(buttons);
    dlg.append(form);
    document.body.append(dlg);

    btn.addEventListener('click', () => {
      $('release-result').hidden = true;
      $('release-result').className = 'release-result';
      dlg.showModal();
      $('release-to').focus();
    });
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const id = openId();
      const to = $('release-to').value.split(/[,;\s]+/).filter(Boolean);
      if (id === null || !to.length) return;
      const out = $('release-result');
      send.disabled = true;
      out.hidden = false;
      out.className = 'release-result';
      out.textContent = 'Sending through the relay…';
      let body = null;
      let status = 0;
      try {
        const res = await fetch('/api/scalr/messages/' + id + '/release', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ to }),
        });
        status = res.status;
        try { body = await res.json(); } catch (e) { /* not JSON */ }
      } catch (e) {
        body = { error: 'the inbox did not answer: ' + e.message };
      }
      send.disabled = false;
      if (status === 200 && body && body.released) {
        out.classList.add('ok');
        out.textContent = 'Released to ' + body.to.join(', ') + '. The relay answered: ' + relayLine(body.relay);
      } else {
        out.classList.add('bad');
        const relay = body && relayLine(body.relay);
        out.textContent = ((body && body.error) || 'failed (' + status + ')') +
          (body && body.refused ? ': ' + body.refused.join(', ') : '') +
          (relay ? ' The relay answered: ' + relay : '');
      }
    });
  }

  fetch('/api/scalr/release', { headers: { Accept: 'application/json' } })
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => { if (info && info.enabled) build(info); })
    .catch(() => { /* no release: no button */ });
})();
