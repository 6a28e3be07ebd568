// Device widths and a dark-mode preview for the HTML view: a small toolbar
// above the sandboxed frame.  Widths set the frame's own width, so the
// mail's media queries see a phone (375 px) or a tablet (768 px); dark
// loads the HTML with its prefers-color-scheme: dark rules on.  The frame
// stays sandboxed; app.js needs no change.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const WIDTHS = [['desktop', 'Desktop', ''], ['tablet', 'Tablet 768', '768px'], ['phone', 'Phone 375', '375px']];

  function button(id, label, group) {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = id;
    b.className = 'pv-btn';
    b.textContent = label;
    b.setAttribute('aria-pressed', 'false');
    group.append(b);
    return b;
  }

  function init() {
    const frame = $('html-frame');
    if (!frame) return;
    const bar = document.createElement('div');
    bar.className = 'pv-bar';
    bar.id = 'preview-bar';
    const widths = document.createElement('div');
    widths.className = 'pv-group';
    widths.setAttribute('role', 'group');
    widths.setAttribute('aria-label', 'Preview width');
    const scheme = document.createElement('div');
    scheme.className = 'pv-group';
    bar.append(widths, scheme);
    frame.before(bar);

    const buttons = WIDTHS.map(([key, label, w]) => {
      const b = button('pv-' + key, label, widths);
      b.addEventListener('click', () => {
        for (const o of buttons) o.setAttribute('aria-pressed', String(o === b));
        frame.style.width = w;
        frame.classList.toggle('pv-device', Boolean(w));
      });
      return b;
    });
    buttons[0].setAttribute('aria-pressed', 'true');
    const d = button('pv-dark', 'Dark', scheme);
    // Chromium and Firefox answer prefers-color-scheme inside a frame from
    // the user's setting only, so the inbox serves the HTML with the mail's
    // dark-mode media queries switched on (?scheme=dark).
    const src = (on) => {
      const base = (frame.getAttribute('src') || '').replace(/\?scheme=dark$/, '');
      return /\/html$/.test(base) ? base + (on ? '?scheme=dark' : '') : null;
    };
    let dark = false;
    d.addEventListener('click', () => {
      dark = !dark;
      d.setAttribute('aria-pressed', String(dark));
      frame.style.colorScheme = dark ? 'dark' : '';
      const s = src(dark);
      if (s) frame.setAttribute('src', s);
    });
    // A newly opened message keeps the mode chosen.
    new MutationObserver(() => {
      const s = src(dark);
      if (s && s !== frame.getAttribute('src')) frame.setAttribute('src', s);
    }).observe(frame, { attributes: true, attributeFilter: ['src'] });
    // The bar is for HTML only: hidden with the frame.
    new MutationObserver(() => { bar.hidden = frame.hidden; })
      .observe(frame, { attributes: true, attributeFilter: ['hidden'] });
    bar.hidden = frame.hidden;
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
