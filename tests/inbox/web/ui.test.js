// The web UI in Debian's chromium (playwright-core, executablePath
// /usr/bin/chromium): live updates without a reload, the sandboxed HTML view,
// scripts in subjects and bodies that never run, tabs, keyboard use,
// deleting, and the two screenshots for docs/.
'use strict';

const assert = require('assert/strict');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const M = require('./lib/messages');

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function api(ctx, method, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ctx.url.hostname, port: ctx.url.port, method, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body ? JSON.parse(body) : null));
    });
    req.on('error', reject);
    req.end();
  });
}

// A server on another port that counts every request: the mail HTML points
// at it, and it must never be asked for anything.
function startBait() {
  const bait = { hits: [] };
  bait.server = http.createServer((req, res) => {
    bait.hits.push(req.url);
    res.end('bait');
  });
  return new Promise((resolve) => bait.server.listen(0, '127.0.0.1', () => {
    bait.port = bait.server.address().port;
    resolve(bait);
  }));
}

// A small logo as SVG, sent as an inline (cid:) image part.
const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32" viewBox="0 0 120 32">' +
  '<rect width="32" height="32" rx="8" fill="#2563eb"/><path d="M8 11h16v10H8z" fill="none" stroke="#fff" stroke-width="2"/>' +
  '<path d="M8 11l8 6 8-6" fill="none" stroke="#fff" stroke-width="2"/>' +
  '<text x="40" y="22" font-family="Arial" font-size="16" font-weight="bold" fill="#1d2939">Acme</text></svg>';

function invoice(to, number) {
  const html = '<div style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:24px auto;color:#1d2939">' +
    '<img src="cid:logo@acme.example" alt="Acme" width="120" height="32">' +
    '<h1 style="font-size:22px;margin:24px 0 8px">Your invoice #' + number + ' is ready</h1>' +
    '<p style="color:#475467;line-height:1.5">Hi Carol, thanks for your order. Here is a summary; the PDF is attached.</p>' +
    '<table style="width:100%;border-collapse:collapse;margin:16px 0;font-size:14px">' +
    '<tr><td style="padding:8px 0;border-bottom:1px solid #eaecf0">Team plan (monthly)</td><td style="text-align:right;border-bottom:1px solid #eaecf0">€49.00</td></tr>' +
    '<tr><td style="padding:8px 0;border-bottom:1px solid #eaecf0">Extra seats × 3</td><td style="text-align:right;border-bottom:1px solid #eaecf0">€27.00</td></tr>' +
    '<tr><td style="padding:8px 0;font-weight:bold">Total</td><td style="text-align:right;font-weight:bold">€76.00</td></tr></table>' +
    '<p><a href="https://acme.example/invoices/' + number + '" style="display:inline-block;background:#2563eb;color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none">View invoice</a></p>' +
    '<p style="color:#98a2b3;font-size:12px;margin-top:32px">Acme Inc. · 1 Example Street · Berlin</p></div>';
  return M.withAttachments({
    from: 'Acme Billing <billing@acme.example>',
    to,
    subject: 'Your invoice #' + number + ' is ready',
    text: 'Hi Carol, your invoice #' + number + ' is ready. Total: €76.00.',
    html,
    attachments: [
      { cid: 'logo@acme.example', type: 'image/svg+xml', data: LOGO },
      { name: 'invoice-' + number + '.pdf', type: 'application/pdf', data: '%PDF-1.4\n% test\n' },
    ],
  });
}

async function waitForRow(page, subject) {
  await page.locator('#list .item', { hasText: subject }).first().waitFor({ state: 'visible', timeout: 10000 });
}

async function open(page, subject) {
  await page.locator('#list .item', { hasText: subject }).first().click();
  await page.locator('#m-subject', { hasText: subject }).waitFor({ timeout: 10000 });
}

async function htmlFrame(page) {
  const handle = await page.waitForSelector('#html-frame');
  const frame = await handle.contentFrame();
  assert.ok(frame, 'the HTML frame exists');
  return frame;
}

const HOSTILE_SUBJECT = '<script>window.top.pwned("subject")</script><img src=x onerror="window.top.pwned(\'subject-img\')">';

module.exports = {
  async setup(ctx) {
    const env = { pwned: [], dialogs: [], errors: [], console: [] };
    env.bait = await startBait();
    env.browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
    env.context = await env.browser.newContext({ viewport: { width: 1360, height: 820 }, deviceScaleFactor: 1 });
    env.page = await env.context.newPage();
    await env.page.exposeBinding('pwned', (source, what) => { env.pwned.push(String(what)); });
    env.page.on('dialog', (d) => {
      // the UI never uses alert/confirm/prompt: any dialog is an injected script
      env.dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    env.page.on('pageerror', (e) => env.errors.push(e.message));
    env.page.on('console', (m) => { if (m.type() === 'error') env.console.push(m.text()); });
    return env;
  },

  async teardown(ctx, env) {
    if (env.browser) await env.browser.close();
    if (env.bait) env.bait.server.close();
  },

  tests: [
    {
      name: 'ui: the page loads, empty and live',
      async fn(ctx, env) {
        await api(ctx, 'DELETE', '/api/v1/messages');
        await env.page.goto(ctx.http);
        await env.page.locator('#live.on').waitFor({ timeout: 10000 });
        await env.page.locator('#empty').waitFor({ state: 'visible' });
        assert.equal(await env.page.textContent('#empty-title'), 'No messages yet');
        assert.equal(await env.page.textContent('#count'), '0 messages');
        assert.deepEqual(env.errors, []);
        assert.deepEqual(env.console, [], 'the UI itself breaks no CSP rule and logs no error');
      },
    },
    {
      name: 'ui: a message delivered while the page is open appears without a reload',
      async fn(ctx, env) {
        const page = env.page;
        await page.evaluate(() => { window.noReloadMarker = 'still here'; });
        await ctx.deliver({ from: 'billing@acme.example', to: ['carol@example.net'], raw: invoice('Carol <carol@example.net>', 1042) });
        await waitForRow(page, 'Your invoice #1042 is ready');
        assert.equal(await page.evaluate(() => window.noReloadMarker), 'still here');
        assert.equal(await page.textContent('#count'), '1 message');
        assert.equal(await page.locator('#list .item').count(), 1);
        const row = page.locator('#list .item').first();
        assert.equal(await row.locator('.from').textContent(), 'Acme Billing');
        assert.equal(await row.locator('svg.clip').count(), 1, 'the attachment mark is shown');
      },
    },
    {
      name: 'ui: a message sent by `scalr-email send` appears without a reload',
      skip: (ctx) => !ctx.cliSend,
      skipWhy: 'no scalr-email binary with `send` (harness mode)',
      async fn(ctx, env) {
        const page = env.page;
        await ctx.cliSend(['--to', 'dev@example.org', '--subject', 'Sent by scalr-email send',
          '--body', 'Plain part from the CLI.', '--html', '<h1>Hello from scalr-email send</h1>']);
        await waitForRow(page, 'Sent by scalr-email send');
        assert.equal(await page.evaluate(() => window.noReloadMarker), 'still here');
        await open(page, 'Sent by scalr-email send');
        const frame = await htmlFrame(page);
        await frame.waitForSelector('h1');
        assert.equal(await frame.textContent('h1'), 'Hello from scalr-email send');
      },
    },
    {
      name: 'ui: a calendar invite shows as a card, an inline image inside the HTML',
      skip: (ctx) => !ctx.cliSend,
      skipWhy: 'no scalr-email binary with `send` (harness mode)',
      async fn(ctx, env) {
        const page = env.page;
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalr-cal-'));
        try {
          const ics = path.join(dir, 'invite.ics');
          const png = path.join(dir, 'dot.png');
          fs.writeFileSync(ics, 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n' +
            'UID:7@acme.example\r\nDTSTART:20270301T100000Z\r\nDTEND:20270301T110000Z\r\n' +
            'SUMMARY:Onboarding call\r\nLOCATION:Room 4\r\nORGANIZER;CN=Ann:mailto:ann@acme.example\r\n' +
            'END:VEVENT\r\nEND:VCALENDAR\r\n');
          fs.writeFileSync(png, M.PNG);
          await ctx.cliSend(['--to', 'dev@example.org', '--subject', 'Invitation: Onboarding call',
            '--body', 'You are invited.', '--html', '<p>Invited</p><img src="cid:dot.png" alt="dot">',
            '--inline', png, '--calendar', ics]);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
        await waitForRow(page, 'Invitation: Onboarding call');
        await open(page, 'Invitation: Onboarding call');
        const card = page.locator('#m-calendar .cal-card');
        await card.waitFor({ state: 'visible' });
        assert.equal(await card.locator('.cal-summary').textContent(), 'Onboarding call');
        assert.match(await card.locator('.cal-method').textContent(), /request/);
        const meta = await card.locator('.cal-meta').textContent();
        assert.match(meta, /Room 4/);
        assert.match(meta, /ann@acme\.example/);
        assert.match(meta, /2027/);
        const frame = await htmlFrame(page);
        await frame.waitForFunction(() => document.images[0] && document.images[0].complete);
        assert.equal(await frame.evaluate(() => document.images[0].naturalWidth), 1, 'the cid: image is shown');
        await open(page, 'Sent by scalr-email send');
        assert.equal(await page.isVisible('#m-calendar'), false, 'no card without a calendar part');
      },
    },
    {
      name: 'ui: opening a message renders its HTML in a sandboxed frame',
      async fn(ctx, env) {
        const page = env.page;
        await open(page, 'Your invoice #1042 is ready');
        const sandbox = (await page.getAttribute('#html-frame', 'sandbox')).split(/\s+/);
        assert.ok(!sandbox.includes('allow-scripts') && !sandbox.includes('allow-same-origin'), 'sandbox: ' + sandbox);
        const frame = await htmlFrame(page);
        await frame.waitForSelector('h1');
        assert.equal(await frame.textContent('h1'), 'Your invoice #1042 is ready');
        assert.match(frame.url(), /\/api\/scalr\/messages\/\d+\/html$/);
        // the cid: logo was inlined as a data: URL and decoded
        await frame.waitForFunction(() => document.images[0] && document.images[0].complete);
        assert.equal(await frame.evaluate(() => document.images[0].naturalWidth), 120);
        assert.equal(await page.textContent('#m-from'), 'Acme Billing <billing@acme.example>');
        assert.equal(await page.getAttribute('#tab-html', 'aria-selected'), 'true');
        const row = page.locator('#list .item', { hasText: 'Your invoice #1042 is ready' });
        assert.equal(await row.getAttribute('aria-selected'), 'true');
        assert.equal(await page.locator('#list .item[aria-selected="true"]').count(), 1);
      },
    },
    {
      name: 'ui: the deliverability note is computed when asked, not before',
      async fn(ctx, env) {
        const page = env.page;
        await open(page, 'Your invoice #1042 is ready');
        assert.equal(await page.textContent('#m-deliv-note'), '', 'nothing until the button is pressed');
        const asked = page.waitForResponse((r) => /\/deliverability$/.test(r.url()));
        await page.click('#m-deliv-check');
        const d = await (await asked).json();
        await page.locator('#m-deliv-note', { hasText: d.note }).waitFor({ timeout: 5000 });
        assert.equal(await page.textContent('#m-deliv-note'), (d.would_fail_dmarc ? '⚠ ' : '✓ ') + d.note);
        assert.equal(d.from_domain, 'acme.example');
        assert.equal(await page.isVisible('#m-deliv-check'), false);
      },
    },
    {
      name: 'ui: a message with bare line endings is one message, shown with a warning',
      skip: (ctx) => !ctx.smtp,
      skipWhy: 'needs the real SMTP side',
      async fn(ctx, env) {
        const { conversation, smuggling } = require('./lib/smtp');
        const codes = await conversation({ host: ctx.smtp.host, port: ctx.smtp.port, steps: smuggling('Bare line endings') });
        assert.deepEqual(codes, ['220', '250', '250', '250', '354', '250', '221'], 'one message, one 250 for its data');
        const page = env.page;
        await open(page, 'Bare line endings');
        const warning = page.locator('#m-warning');
        await warning.waitFor({ state: 'visible' });
        assert.match(await warning.textContent(), /bare line endings.*Gmail and Exchange refuse such mail/);
        const mark = page.locator('#list .item', { hasText: 'Bare line endings' }).locator('.bare');
        assert.match(await mark.getAttribute('aria-label'), /bare line endings/, 'the list marks it too');
        assert.equal(await page.locator('#list .item', { hasText: 'smuggled' }).count(), 0,
          'no second message was smuggled in');
        await open(page, 'Your invoice #1042 is ready');
        assert.equal(await page.isVisible('#m-warning'), false, 'a clean message has no warning');
      },
    },
    {
      name: 'ui: tabs show the text, headers, raw source and attachments',
      async fn(ctx, env) {
        const page = env.page;
        await page.click('#tab-text');
        assert.equal(await page.textContent('#text'), 'Hi Carol, your invoice #1042 is ready. Total: €76.00.');
        // keyboard: arrows move between tabs (ARIA tabs pattern)
        await page.keyboard.press('ArrowRight');
        assert.equal(await page.getAttribute('#tab-headers', 'aria-selected'), 'true');
        assert.ok(await page.isVisible('#panel-headers'));
        const subjectRow = page.locator('#headers tr', { hasText: 'Subject' }).first();
        assert.equal(await subjectRow.locator('td').textContent(), 'Your invoice #1042 is ready');
        await page.keyboard.press('ArrowRight');
        await page.locator('#raw', { hasText: 'Content-Type: multipart/mixed' }).waitFor({ timeout: 5000 });
        await page.keyboard.press('ArrowRight');
        assert.equal(await page.textContent('#att-count'), '2');
        const links = page.locator('#attachments a');
        assert.equal(await links.count(), 2);
        const pdf = page.locator('#attachments li', { hasText: 'invoice-1042.pdf' });
        const href = await pdf.locator('a').getAttribute('href');
        assert.match(href, /^\/api\/scalr\/messages\/\d+\/attachments\/\d+$/);
        const body = await page.evaluate((u) => fetch(u).then((r) => r.text()), href);
        assert.equal(body, '%PDF-1.4\n% test\n');
        await page.click('#tab-html');
        assert.deepEqual(env.console, [], 'no CSP violation or error while showing a normal message');
      },
    },
    {
      name: 'ui: scripts in the subject or body never run and nothing remote loads',
      async fn(ctx, env) {
        const page = env.page;
        const bait = 'http://127.0.0.1:' + env.bait.port;
        const html = '<p id="shown">Rendered, but inert.</p>' +
          '<script>parent.pwned("body-script"); top.document.title = "PWNED"</script>' +
          '<img src="x" onerror="parent.pwned(\'body-onerror\')">' +
          '<svg onload="parent.pwned(\'svg-onload\')"></svg>' +
          '<img src="' + bait + '/pixel.png"><link rel="stylesheet" href="' + bait + '/style.css">' +
          '<div style="background:url(' + bait + '/bg.png)">bg</div>' +
          '<iframe src="' + bait + '/frame"></iframe><script src="' + bait + '/x.js"></script>' +
          '<meta http-equiv="refresh" content="0;url=' + bait + '/refresh">';
        await ctx.deliver({
          from: 'mallory@evil.example',
          to: ['victim@example.org'],
          raw: M.htmlMessage({
            from: '"<img src=x onerror=window.top.pwned(\'from\')>" <mallory@evil.example>',
            to: 'victim@example.org',
            subject: HOSTILE_SUBJECT,
            text: '<script>window.top.pwned("text")</script> plain text',
            html,
          }),
        });
        await waitForRow(page, '<script>window.top.pwned("subject")');
        await open(page, '<script>window.top.pwned("subject")');
        assert.equal(await page.textContent('#m-subject'), HOSTILE_SUBJECT);
        const frame = await htmlFrame(page);
        await frame.waitForSelector('#shown');
        for (const tab of ['text', 'headers', 'raw', 'attachments', 'html']) {
          await page.click('#tab-' + tab);
          await page.waitForTimeout(150);
        }
        assert.match(await page.textContent('#text'), /^<script>window\.top\.pwned\("text"\)<\/script> plain text/);
        await page.waitForTimeout(800);
        assert.deepEqual(env.pwned, [], 'no injected script ran');
        assert.deepEqual(env.dialogs, []);
        assert.doesNotMatch(await page.title(), /PWNED/);
        assert.deepEqual(env.bait.hits, [], 'nothing was fetched from another server');
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'ui: search filters the list',
      async fn(ctx, env) {
        const page = env.page;
        await page.fill('#search', 'invoice');
        await page.locator('#count', { hasText: '1 match' }).waitFor({ timeout: 5000 });
        assert.equal(await page.locator('#list .item').count(), 1);
        await page.selectOption('#search-kind', 'from');
        await page.fill('#search', 'mallory');
        await page.locator('#list .item', { hasText: 'pwned' }).waitFor({ timeout: 5000 });
        assert.equal(await page.locator('#list .item').count(), 1);
        await page.fill('#search', 'nobody-matches-this');
        await page.locator('#empty-title', { hasText: 'No matches' }).waitFor({ timeout: 5000 });
        await page.fill('#search', '');
        await page.selectOption('#search-kind', 'containing');
        await page.locator('#count', { hasText: /^\d+ messages?$/ }).waitFor({ timeout: 5000 });
      },
    },
    {
      name: 'ui: keyboard: j/k move, Enter opens, Delete asks and deletes',
      async fn(ctx, env) {
        const page = env.page;
        for (const n of [1, 2, 3])
          await ctx.deliver({
            from: 'news@example.com',
            to: ['reader@example.org'],
            raw: M.plain({ from: 'News <news@example.com>', to: 'reader@example.org', subject: 'Keyboard test ' + n, text: 'n=' + n }),
          });
        await waitForRow(page, 'Keyboard test 3');
        const before = (await api(ctx, 'GET', '/api/v2/messages')).total;
        // Escape leaves the (empty) search box for the list; "/" jumps back to it
        await page.focus('#search');
        await page.keyboard.press('Escape');
        assert.equal(await page.evaluate(() => document.activeElement.getAttribute('role')), 'option');
        await page.keyboard.press('/');
        assert.equal(await page.evaluate(() => document.activeElement.id), 'search');
        await page.keyboard.press('Escape');
        assert.equal(await page.evaluate(() => document.activeElement.getAttribute('role')), 'option',
          await page.evaluate(() => document.activeElement.outerHTML.slice(0, 200)));
        await page.keyboard.press('Home');
        await page.keyboard.press('j');
        await page.keyboard.press('ArrowDown');
        await page.keyboard.press('k');
        const focused = await page.evaluate(() => document.activeElement.textContent);
        assert.match(focused, /Keyboard test 2/);
        await page.keyboard.press('Enter');
        await page.locator('#m-subject', { hasText: 'Keyboard test 2' }).waitFor({ timeout: 5000 });
        await page.keyboard.press('Delete');
        await page.locator('#confirm[open]').waitFor({ timeout: 5000 });
        assert.match(await page.textContent('#confirm-text'), /Keyboard test 2/);
        assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-ok');
        await page.keyboard.press('Enter');
        await page.locator('#list .item', { hasText: 'Keyboard test 2' }).waitFor({ state: 'detached', timeout: 5000 });
        assert.equal((await api(ctx, 'GET', '/api/v2/messages')).total, before - 1);
        // Escape cancels the dialog and deletes nothing
        await page.keyboard.press('Delete');
        await page.locator('#confirm[open]').waitFor({ timeout: 5000 });
        await page.keyboard.press('Escape');
        await page.locator('#confirm[open]').waitFor({ state: 'detached', timeout: 5000 });
        assert.equal((await api(ctx, 'GET', '/api/v2/messages')).total, before - 1);
      },
    },
    {
      name: 'ui: the Delete button and Delete all work',
      async fn(ctx, env) {
        const page = env.page;
        await open(page, 'Keyboard test 1');
        await page.click('#m-delete');
        await page.click('#confirm-ok');
        await page.locator('#list .item', { hasText: 'Keyboard test 1' }).waitFor({ state: 'detached', timeout: 5000 });
        await page.click('#delete-all');
        await page.click('#confirm-ok');
        await page.locator('#empty').waitFor({ state: 'visible', timeout: 5000 });
        assert.equal((await api(ctx, 'GET', '/api/v2/messages')).total, 0);
        assert.ok(await page.isHidden('#message'));
        assert.deepEqual(env.pwned, []);
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'ui: over --max-memory the list says how many messages were dropped and why',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox binary',
      async fn(ctx, env) {
        const { spawn } = require('child_process');
        const { sendMail } = require('./lib/smtp');
        const bin = process.env.SCALR_EMAIL || path.resolve(__dirname, '../../../build/scalr-email');
        const child = spawn(bin, ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--max-memory', '1k'],
          { stdio: ['ignore', 'pipe', 'inherit'] });
        const page = await env.context.newPage();
        try {
          const where = await new Promise((resolve, reject) => {
            let out = '';
            const t = setTimeout(() => reject(new Error('no smtp/http lines within 10 s')), 10000);
            child.stdout.setEncoding('utf8');
            child.stdout.on('data', (d) => {
              out += d;
              const s = /^smtp: (\S+):(\d+)$/m.exec(out);
              const h = /^http: (http:\/\/\S+)$/m.exec(out);
              if (s && h) { clearTimeout(t); resolve({ smtp: Number(s[2]), http: h[1] }); }
            });
          });
          for (let i = 1; i <= 3; i++) {
            await sendMail({ host: '127.0.0.1', port: where.smtp, from: 'a@example.com', to: ['b@example.org'],
              raw: 'From: a@example.com\r\nTo: b@example.org\r\nSubject: Kept or not ' + i + '\r\n\r\n' + 'x'.repeat(600) + '\r\n' });
          }
          await page.goto(where.http);
          await waitForRow(page, 'Kept or not 3');
          const note = page.locator('#dropped');
          await note.waitFor({ state: 'visible' });
          assert.match(await note.textContent(), /^2 older messages were dropped to stay under --max-memory \(1(\.0)? KB\)\. Start the inbox with --db FILE to keep everything\.$/);
          assert.equal(await page.locator('#list .item').count(), 1);
          const listing = await api({ url: new URL(where.http) }, 'GET', '/api/scalr/messages');
          assert.equal(listing.store.dropped, 2);
          assert.match(listing.store.dropped_why, /--max-memory \(1024 bytes\).*--db FILE/);
        } finally {
          await page.close();
          child.kill('SIGTERM');
        }
      },
    },
    {
      name: 'ui: screenshots of the list and of an open message',
      timeout: 60000,
      async fn(ctx, env) {
        const page = env.page;
        const dir = ctx.screenshots || fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-shots-'));
        const send = (from, to, raw) => ctx.deliver({ from, to: [to], raw });
        await send('hello@acme.example', 'dan@example.org', M.htmlMessage({
          from: 'Acme <hello@acme.example>', to: 'dan@example.org', subject: 'Welcome to Acme, Dan!',
          text: 'Welcome aboard.', html: '<h1>Welcome aboard</h1>' }));
        await send('security@acme.example', 'erin@example.org', M.plain({
          from: 'Acme Security <security@acme.example>', to: 'erin@example.org',
          subject: 'Reset your password', text: 'Use this link within 30 minutes.' }));
        await send('noreply@shop.example', 'frank@example.org', M.htmlMessage({
          from: 'Shop <noreply@shop.example>', to: 'frank@example.org', subject: 'Your order #A-2291 has shipped',
          text: 'On its way.', html: '<p>On its way.</p>' }));
        await send('reports@acme.example', 'team@example.org', M.withAttachments({
          from: 'Acme Reports <reports@acme.example>', to: 'team@example.org', subject: 'Weekly delivery report',
          text: 'Attached.', attachments: [{ name: 'report.csv', type: 'text/csv', data: 'a,b\n' }] }));
        await send('alerts@acme.example', 'ops@example.org', M.plain({
          from: 'Acme Alerts <alerts@acme.example>', to: 'ops@example.org',
          subject: M.word('Zahlung eingegangen – Rechnung 1043'), text: 'Danke!' }));
        await send('billing@acme.example', 'carol@example.net', invoice('Carol <carol@example.net>', 1044));
        await waitForRow(page, 'Your invoice #1044 is ready');
        await page.mouse.move(900, 700);
        await page.waitForTimeout(1800); // let the "new mail" highlight fade
        await page.screenshot({ path: path.join(dir, 'inbox-list.png') });
        await open(page, 'Your invoice #1044 is ready');
        const frame = await htmlFrame(page);
        await frame.waitForFunction(() => document.images[0] && document.images[0].complete);
        await page.mouse.move(900, 790);
        await page.waitForTimeout(300);
        await page.screenshot({ path: path.join(dir, 'inbox-message.png') });
        for (const f of ['inbox-list.png', 'inbox-message.png'])
          assert.ok(fs.statSync(path.join(dir, f)).size > 10000, f + ' was written');
        if (ctx.screenshots) console.log('# screenshots in ' + dir);
        else fs.rmSync(dir, { recursive: true, force: true });
      },
    },
  ],
};
