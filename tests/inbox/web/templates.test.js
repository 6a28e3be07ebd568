// The Templates view: `scalr-email inbox --templates DIR` shows every template
// of DIR rendered with its sample.json (chromium through playwright-core):
// the subject, the HTML part in the sandboxed frame, the text part; an edit
// to a file shows up without a reload; a broken template shows its error.
// A sample.json carrying markup proves nothing from the data runs.  The main
// inbox (started by run.js without --templates) must show no Templates view.
'use strict';

const assert = require('assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '../../..');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const EVIL = '<img src=x onerror="window.pwned(1)"><script>window.pwned(2)</script>';

function bin() {
  return process.env.SCALR_EMAIL || path.join(ROOT, 'build/scalr-email');
}

function startInbox(dir) {
  const child = spawn(bin(), ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--templates', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('the templates inbox did not start within 10 s')), 10000);
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('the templates inbox exited ' + code + ': ' + err)); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^http: (http:\/\/\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, http: m[1] });
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

module.exports = {
  async setup() {
    const env = { errors: [], pwned: [] };
    env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-templates-'));
    fs.cpSync(path.join(ROOT, 'tests/template/templates'), env.dir, { recursive: true });
    fs.mkdirSync(path.join(env.dir, 'evil'));
    fs.writeFileSync(path.join(env.dir, 'evil/subject.txt'), 'Hello {{name}}\n');
    fs.writeFileSync(path.join(env.dir, 'evil/body.html'), '<p class="who">{{name}}</p>\n');
    fs.writeFileSync(path.join(env.dir, 'evil/sample.json'), JSON.stringify({ name: EVIL }));
    env.inbox = await startInbox(env.dir);
    env.browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
    env.page = await (await env.browser.newContext({ viewport: { width: 1360, height: 820 } })).newPage();
    await env.page.exposeBinding('pwned', (source, what) => { env.pwned.push(String(what)); });
    env.page.on('pageerror', (e) => env.errors.push(e.message));
    return env;
  },

  async teardown(ctx, env) {
    if (env.browser) await env.browser.close();
    await stop(env.inbox && env.inbox.child);
    fs.rmSync(env.dir, { recursive: true, force: true });
  },

  tests: [
    {
      name: 'templates ui: no Templates button without --templates',
      async fn(ctx, env) {
        await env.page.goto(ctx.http);
        await env.page.locator('#live.on').waitFor({ timeout: 10000 });
        await env.page.waitForTimeout(300); // templates.js has asked /api/scalr/templates by now
        assert.equal(await env.page.locator('#templates-toggle').count(), 0);
      },
    },
    {
      name: 'templates ui: subject, sandboxed HTML and text of each; edits show up; errors shown; nothing injected runs',
      timeout: 60000,
      async fn(ctx, env) {
        const page = env.page;
        await page.goto(env.inbox.http + '/#templates');
        await page.locator('#templates-view').waitFor({ state: 'visible' });
        assert.equal(await page.locator('main.panes').isHidden(), true);
        await page.locator('#t-list li').nth(3).waitFor();
        assert.deepEqual(await page.locator('#t-list .t-name').allTextContents(), ['evil', 'invoice', 'reset', 'welcome']);
        // evil first (sorted): its markup is text in the subject and escaped in the frame
        await page.locator('#t-subject', { hasText: 'Hello <img' }).waitFor();
        const who = page.frameLocator('#t-frame').locator('p.who');
        assert.equal(await who.textContent(), EVIL);
        await page.locator('#t-list li[data-name="welcome"]').click();
        await page.locator('#t-subject', { hasText: 'Welcome to Acme, Ana!' }).waitFor();
        assert.match(await page.frameLocator('#t-frame').locator('p').first().textContent(), /Hi Ana,/);
        assert.match(await page.textContent('#t-text'), /Sign in: https:\/\/acme\.example\/login/);
        assert.equal(await page.getAttribute('#t-frame', 'sandbox'), 'allow-popups allow-popups-to-escape-sandbox');
        // an edit to the file shows without a reload
        fs.writeFileSync(path.join(env.dir, 'welcome/subject.txt'), 'Edited for {{first_name}}\n');
        await page.locator('#t-subject', { hasText: 'Edited for Ana' }).waitFor({ timeout: 10000 });
        fs.writeFileSync(path.join(env.dir, 'welcome/body.html'), '<p>{{missing_one}}</p>\n');
        await page.locator('#t-problem', { hasText: "missing variable 'missing_one'" }).waitFor({ timeout: 10000 });
        assert.equal(await page.locator('#t-list li[data-name="welcome"] .t-state').textContent(), 'error');
        await page.locator('#templates-toggle').click();
        assert.equal(await page.locator('main.panes').isVisible(), true);
        assert.deepEqual(env.pwned, []);
        assert.deepEqual(env.errors, []);
      },
    },
  ],
};
