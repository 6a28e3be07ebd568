// The inbox additions in chromium (playwright-core): releasing a message
// from the UI and the HTML preview's device widths and dark mode.
// A second inbox is started with --release-env pointing at the main inbox
// (run.js's, a real SMTP server that records what it gets) and
// --release-allow '*@example.test'; the main inbox, started without them,
// must show no Release button.
'use strict';

const assert = require('assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const M = require('./lib/messages');
const { sendMail } = require('./lib/smtp');

const ROOT = path.resolve(__dirname, '../../..');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function bin() {
  return process.env.SCALR_EMAIL || path.join(ROOT, 'build/scalr-email');
}

function request(base, method, p) {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        let json = null;
        try { json = body ? JSON.parse(body) : null; } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, json, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function startInbox(args) {
  const child = spawn(bin(), ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'].concat(args),
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('the release inbox did not start within 10 s')), 10000);
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('the release inbox exited ' + code + ': ' + err)); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const h = /^http: (http:\/\/\S+)$/m.exec(out);
      const s = /^smtp: 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (h && s) {
        clearTimeout(timer);
        resolve({ child, http: h[1], smtpPort: Number(s[1]) });
      }
    });
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

// HTML whose layout answers the frame's width and color scheme.
const RESPONSIVE = '<!doctype html><html><head><style>' +
  'body{margin:0;background:#ffffff;color:#111111} .phone{display:none} ' +
  '@media (max-width:480px){.phone{display:block}.wide{display:none}} ' +
  '@media (prefers-color-scheme: dark){body{background:#000000;color:#eeeeee}}' +
  '</style></head><body><p class="wide" id="wide">Wide layout</p><p class="phone" id="phone">Phone layout</p></body></html>';

async function openSubject(page, subject) {
  const row = page.locator('#list .item', { hasText: subject }).first();
  await row.waitFor({ state: 'visible', timeout: 10000 });
  await row.click();
  await page.locator('#m-subject', { hasText: subject }).waitFor();
}

async function frameOf(page) {
  const frame = await (await page.waitForSelector('#html-frame')).contentFrame();
  await frame.waitForSelector('body');
  return frame;
}

module.exports = {
  async setup(ctx) {
    const env = { errors: [] };
    if (ctx.stub) return env;
    env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-tools-'));
    env.envFile = path.join(env.dir, 'relay.env');
    fs.writeFileSync(env.envFile, 'SMTP_HOST=127.0.0.1\nSMTP_PORT=' + ctx.smtp.port +
      '\nSMTP_USE_TLS=false\nSMTP_USE_SSL=false\nSMTP_FROM=releaser@example.test\n');
    env.inbox = await startInbox(['--release-env', env.envFile, '--release-allow', '*@example.test']);
    env.browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
    env.page = await (await env.browser.newContext({ viewport: { width: 1360, height: 820 } })).newPage();
    env.page.on('pageerror', (e) => env.errors.push(e.message));
    return env;
  },

  async teardown(ctx, env) {
    if (env.browser) await env.browser.close();
    await stop(env.inbox && env.inbox.child);
    if (env.dir) fs.rmSync(env.dir, { recursive: true, force: true });
  },

  tests: [
    {
      name: 'html check ui: a feature Outlook lacks listed with its line; scores per client family',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const subject = 'Flexbox invoice ' + Date.now();
        const html = '<!doctype html>\n<html>\n<body>\n<p>Hello</p>\n<div style="display: flex; color: red">\n' +
          '<span>a</span></div>\n</body>\n</html>';
        await ctx.deliver({ from: 'app@acme.test', to: ['dev@example.test'],
          raw: M.htmlMessage({ from: 'app@acme.test', to: 'dev@example.test', subject, text: 'x', html }) });
        const page = env.page;
        await page.goto(ctx.http);
        await openSubject(page, subject);
        await page.click('#m-htmlcheck');
        const row = page.locator('#hc-rows tr[data-slug="css-display-flex"]');
        await row.waitFor();
        assert.equal(await row.locator('.hc-line').textContent(), '5');
        assert.match(await row.locator('.hc-bad').textContent(), /Outlook \(.*Windows/);
        assert.match(await page.textContent('#hc-note'), /features found/);
        const outlook = await page.locator('#hc-scores [data-family="outlook"]').textContent();
        assert.match(outlook, /^Outlook \d+%$/);
        assert.ok(Number(/(\d+)%/.exec(outlook)[1]) < 100);
        // the data file and its licence are served with the page
        const lic = await request(ctx.http, 'GET', '/caniemail-LICENSE.txt');
        assert.equal(lic.status, 200);
        assert.match(lic.body, /MIT License/);
        await page.click('#hc-close');
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'links ui: the list with flags, no request before Check links, statuses after',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const hits = [];
        const site = http.createServer((req, res) => {
          hits.push(req.method + ' ' + req.url);
          res.statusCode = req.url === '/gone' ? 404 : 200;
          res.end();
        });
        await new Promise((r) => site.listen(0, '127.0.0.1', r));
        try {
          const base = 'http://127.0.0.1:' + site.address().port;
          const subject = 'Links ' + Date.now();
          await ctx.deliver({ from: 'app@acme.test', to: ['dev@example.test'],
            raw: M.htmlMessage({ from: 'app@acme.test', to: 'dev@example.test', subject, text: 'see ' + base + '/gone',
              html: '<a href="' + base + '/ok">www.acme.test</a>' }) });
          const page = env.page;
          await page.goto(ctx.http);
          await openSubject(page, subject);
          await page.click('#m-links');
          await page.locator('#lk-rows tr').nth(1).waitFor();
          const rows = await page.locator('#lk-rows tr').allTextContents();
          assert.equal(rows.length, 2);
          assert.match(rows[0], /\/ok.*www\.acme\.test.*http:\/\/ \(not encrypted\); the text shows another domain/);
          assert.deepEqual(hits, []);
          await page.click('#lk-check');
          await page.locator('#lk-note', { hasText: 'Checked.' }).waitFor();
          assert.deepEqual(await page.locator('#lk-rows .lk-status').allTextContents(), ['200', '404']);
          assert.deepEqual(hits.sort(), ['HEAD /gone', 'HEAD /ok']);
          await page.click('#lk-close');
          assert.deepEqual(env.errors, []);
        } finally {
          site.close();
        }
      },
    },
    {
      name: 'read state and tags api: X-Tags at delivery, unread count, PUT read/tags, search by tag; MailHog JSON unchanged',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx) {
        const subject = 'Tagged ' + Date.now();
        await ctx.deliver({ from: 'app@acme.test', to: ['dev@example.test'],
          raw: M.plain({ from: 'app@acme.test', to: 'dev@example.test', subject, text: 'hi',
            extra: ['X-Tags: invoice, Welcome ,invoice'] }) });
        let list = (await request(ctx.http, 'GET', '/api/scalr/messages')).json;
        const m = list.items.find((i) => i.subject === subject);
        assert.equal(m.read, false);
        assert.deepEqual(m.tags, ['invoice', 'Welcome']);
        const unread = list.unread;
        assert.ok(unread >= 1);
        const put = (p, body, ct = 'application/json') => new Promise((resolve, reject) => {
          const u = new URL(ctx.http);
          const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: p,
            headers: { 'Content-Type': ct } }, (res) => {
            let b = '';
            res.on('data', (c) => { b += c; });
            res.on('end', () => resolve({ status: res.statusCode, json: b ? JSON.parse(b) : null }));
          });
          req.on('error', reject);
          req.end(typeof body === 'string' ? body : JSON.stringify(body));
        });
        assert.equal((await put('/api/scalr/messages/' + m.id + '/read', { read: true })).status, 200);
        list = (await request(ctx.http, 'GET', '/api/scalr/messages')).json;
        assert.equal(list.unread, unread - 1);
        assert.equal(list.items.find((i) => i.id === m.id).read, true);
        let r = await put('/api/scalr/messages/' + m.id + '/tags', { tags: ['urgent', 'invoice'] });
        assert.equal(r.status, 200);
        assert.deepEqual(r.json.tags, ['urgent', 'invoice']);
        for (const bad of [{ tags: ['a,b'] }, { tags: [' x'] }, { tags: ['x'.repeat(65)] }, { tags: 'x' }, { read: 1 }])
          assert.equal((await put('/api/scalr/messages/' + m.id + '/tags', bad)).status, 400, JSON.stringify(bad));
        assert.equal((await put('/api/scalr/messages/' + m.id + '/read', { read: 'yes' })).status, 400);
        assert.equal((await put('/api/scalr/messages/' + m.id + '/read', '{"read":true}', 'text/plain')).status, 415);
        assert.equal((await put('/api/scalr/messages/99999999/read', { read: true })).status, 404);
        const byTag = (await request(ctx.http, 'GET', '/api/scalr/messages?kind=tag&query=URGENT')).json;
        assert.deepEqual(byTag.items.map((i) => i.id), [m.id]);
        assert.equal((await request(ctx.http, 'GET', '/api/scalr/messages?kind=tag&query=urg')).json.total, 0);
        const unreadOnly = (await request(ctx.http, 'GET', '/api/scalr/messages?kind=unread')).json;
        assert.ok(unreadOnly.items.every((i) => i.read === false));
        // The MailHog API keeps its shape: no new keys in its messages.
        const v2 = (await request(ctx.http, 'GET', '/api/v2/messages?limit=1')).json;
        assert.deepEqual(Object.keys(v2.items[0]).sort(), ['Content', 'Created', 'From', 'ID', 'MIME', 'Raw', 'To']);
      },
    },
    {
      name: 'read state ui: unread rows bold and counted in the title, opened = read, tags set in the UI, a chip searches',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const subject = 'Unread welcome ' + Date.now();
        await ctx.deliver({ from: 'app@acme.test', to: ['dev@example.test'],
          raw: M.plain({ from: 'app@acme.test', to: 'dev@example.test', subject, text: 'hi', extra: ['X-Tags: onboarding'] }) });
        const page = env.page;
        await page.goto(ctx.http);
        const row = page.locator('#list .item', { hasText: subject }).first();
        await row.waitFor();
        assert.match(await row.getAttribute('class'), /\bunread\b/);
        // the list is redrawn on every store change: look the row up afresh
        await page.waitForFunction((s) => [...document.querySelectorAll('#list .item.unread')]
          .some((li) => li.textContent.includes(s) && getComputedStyle(li.querySelector('.from')).fontWeight === '700'), subject);
        const unread = (await request(ctx.http, 'GET', '/api/scalr/messages')).json.unread;
        await page.waitForFunction((n) => document.title === '(' + n + ') Inbox · scalr-email', unread);
        await row.click();
        await page.locator('#list .item:not(.unread)', { hasText: subject }).waitFor();
        await page.waitForFunction((n) => document.title === (n ? '(' + n + ') ' : '') + 'Inbox · scalr-email', unread - 1);
        assert.deepEqual(await page.locator('#m-tags .tag').allTextContents(), ['onboarding×']);
        await page.fill('#m-tag-input', 'vip');
        await page.press('#m-tag-input', 'Enter');
        await page.locator('#m-tags .tag', { hasText: 'vip' }).waitFor();
        await page.locator('#list .item', { hasText: subject }).locator('.tag', { hasText: 'vip' }).waitFor();
        await page.locator('#m-tags .tag', { hasText: 'onboarding' }).locator('.tag-remove').click();
        await page.waitForFunction(() => document.querySelectorAll('#m-tags .tag').length === 1);
        await page.locator('#list .item', { hasText: subject }).locator('.tag', { hasText: 'vip' }).click();
        await page.locator('#count', { hasText: /^1 match$/ }).waitFor();
        assert.equal(await page.inputValue('#search-kind'), 'tag');
        assert.equal(await page.inputValue('#search'), 'vip');
        if (ctx.screenshots) await page.screenshot({ path: path.join(ctx.screenshots, 'inbox-tags.png') });
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'release ui: no Release button without --release-env',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const subject = 'No release here ' + Date.now();
        await ctx.deliver({ from: 'app@acme.test', to: ['dev@example.test'],
          raw: M.plain({ from: 'app@acme.test', to: 'dev@example.test', subject, text: 'hi' }) });
        await env.page.goto(ctx.http);
        await openSubject(env.page, subject);
        assert.equal((await request(ctx.http, 'GET', '/api/scalr/release')).json.enabled, false);
        assert.equal(await env.page.locator('#m-release').count(), 0);
      },
    },
    {
      name: 'release ui: released through the relay, its answer shown; a refused address sends nothing',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const subject = 'Invoice to release ' + Date.now();
        await sendMail({ host: '127.0.0.1', port: env.inbox.smtpPort, from: 'billing@acme.test', to: ['carol@customer.test'],
          raw: M.htmlMessage({ from: 'billing@acme.test', to: 'carol@customer.test', subject, text: 'total 76', html: '<h1>Total 76</h1>' }) });
        const page = env.page;
        await page.goto(env.inbox.http);
        await openSubject(page, subject);
        await page.locator('#m-release').click();
        await page.locator('#release[open]').waitFor();
        assert.match(await page.textContent('#release-allow'), /\*@example\.test/);
        const before = (await request(ctx.http, 'GET', '/api/scalr/messages')).json.total;

        await page.fill('#release-to', 'attacker@evil.test');
        await page.click('#release-send');
        await page.locator('#release-result.bad').waitFor();
        assert.match(await page.textContent('#release-result'), /allow list.*attacker@evil\.test/);
        assert.equal((await request(ctx.http, 'GET', '/api/scalr/messages')).json.total, before);

        await page.fill('#release-to', 'dev@example.test');
        await page.click('#release-send');
        await page.locator('#release-result.ok').waitFor();
        assert.match(await page.textContent('#release-result'), /^Released to dev@example\.test\. The relay answered: 250 /);
        const list = (await request(ctx.http, 'GET', '/api/scalr/messages')).json;
        assert.equal(list.total, before + 1);
        const got = list.items.find((m) => m.subject === subject);
        assert.ok(got, 'the relay (the main inbox) caught the released message');
        assert.equal(got.rcpt, 'dev@example.test');
        const raw = (await request(ctx.http, 'GET', '/api/scalr/messages/' + got.id + '/raw')).body;
        assert.match(raw, /^Received: by inbox\.localhost \(scalr-email inbox, released message \d+\);\r\n\t/);
        assert.match(raw, /\r\nTo: carol@customer\.test\r\n/); // headers as caught
        if (ctx.screenshots) await page.screenshot({ path: path.join(ctx.screenshots, 'inbox-release.png') });
        await page.click('#release-cancel');
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'preview ui: phone and tablet widths measured in the frame, dark mode applied inside it',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox',
      async fn(ctx, env) {
        const subject = 'Responsive newsletter ' + Date.now();
        await ctx.deliver({ from: 'news@acme.test', to: ['dev@example.test'],
          raw: M.htmlMessage({ from: 'news@acme.test', to: 'dev@example.test', subject, text: 'news', html: RESPONSIVE }) });
        const page = env.page;
        await page.goto(ctx.http);
        await openSubject(page, subject);
        let frame = await frameOf(page);
        const width = () => frame.evaluate(() => window.innerWidth);
        assert.ok(await width() > 768, 'desktop: the pane width');
        assert.equal(await frame.isVisible('#wide'), true);
        assert.equal(await frame.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');

        await page.click('#pv-phone');
        await frame.waitForFunction(() => window.innerWidth === 375);
        assert.equal(await page.getAttribute('#pv-phone', 'aria-pressed'), 'true');
        assert.equal(await frame.isVisible('#phone'), true);
        assert.equal(await frame.isVisible('#wide'), false);

        await page.click('#pv-tablet');
        await frame.waitForFunction(() => window.innerWidth === 768);
        assert.equal(await frame.isVisible('#wide'), true);

        await page.click('#pv-dark');
        await page.waitForFunction(() => /\/html\?scheme=dark$/.test(document.getElementById('html-frame').src));
        frame = await frameOf(page);
        await frame.waitForFunction(() => getComputedStyle(document.body).backgroundColor === 'rgb(0, 0, 0)');
        assert.equal(await frame.evaluate(() => innerWidth), 768, 'the width stays');
        assert.equal(await page.getAttribute('#html-frame', 'sandbox'), 'allow-popups allow-popups-to-escape-sandbox');
        if (ctx.screenshots) await page.screenshot({ path: path.join(ctx.screenshots, 'inbox-phone-dark.png') });

        await page.click('#pv-dark');
        await page.click('#pv-desktop');
        await page.waitForFunction(() => /\/html$/.test(document.getElementById('html-frame').src));
        frame = await frameOf(page);
        await frame.waitForFunction(() => window.innerWidth > 768);
        assert.equal(await frame.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');
        assert.deepEqual(env.errors, []);
      },
    },
  ],
};
