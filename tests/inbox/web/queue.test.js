// The Queue view: `scalr-email inbox --queue sqlite:PATH` serves the durable
// queue read-only under /api/scalr/queue and in the UI (chromium through
// playwright-core).  The queue's rows are written with the sqlite3 command
// as an application may (docs/queue-schema.md is a public contract); the
// attempt history is written the same way, so every state is shown without
// waiting for real retries.  The main inbox (started by run.js without
// --queue) must show no Queue view.
'use strict';

const assert = require('assert/strict');
const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '../../..');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const EVIL = '<img src=x onerror="window.pwned(1)">';

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
        resolve({ status: res.statusCode, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

// A second inbox, started with --queue; resolves once it printed its URL.
function startQueueInbox(url) {
  const child = spawn(bin(), ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--queue', url],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('the queue inbox did not start within 10 s')), 10000);
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('the queue inbox exited ' + code + ': ' + err)); });
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

function sql(db, text) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 5000', db, text], { encoding: 'utf8' });
}

const q = (s) => "'" + String(s).replace(/'/g, "''") + "'";

// Rows in every interesting state, with attempts; returns their ids.
function fill(db) {
  const now = Date.now();
  const body = 'From: a@acme.test\r\nTo: x@example.com\r\nSubject: t\r\nMessage-ID: <m@acme.test>\r\n\r\nhi\r\n';
  const row = (o) => {
    const cols = Object.keys(o);
    const vals = cols.map((c) => (typeof o[c] === 'number' ? String(o[c]) : o[c] === null ? 'NULL' : q(o[c])));
    return 'INSERT INTO scalr_email_queue (' + cols.join(', ') + ') VALUES (' + vals.join(', ') + ');';
  };
  const base = (n, extra) => Object.assign({
    mail_from: 'app@acme.test', rcpt_to: 'user' + n + '@example.com', message_id: '<m' + n + '@acme.test>',
    body, size: body.length, created_at: now - 60000, run_at: now - 60000, updated_at: now - 1000,
    expire_at: now + 86400000,
  }, extra);
  sql(db, 'BEGIN;' +
    row(base(1, { state: 'queued', attempts: 2, run_at: now + 3600000, tenant: 'shop',
      last_error: '451 4.3.0 try later (DATA) ' + EVIL })) +
    row(base(2, { state: 'held', lane: 'bulk', last_error: 'provider held: authentication failed (535)' })) +
    row(base(3, { state: 'sent', body: null, attempts: 1, finished_at: now - 5000 })) +
    row(base(4, { state: 'failed', attempts: 1, finished_at: now - 4000, rcpt_to: 'gone@example.com\nok@example.com',
      last_error: '550 5.1.1 no such user: gone@example.com (RCPT)' })) +
    row(base(5, { state: 'queued', run_at: now - 1000 })) +
    'COMMIT;');
  const ids = sql(db, 'SELECT id FROM scalr_email_queue ORDER BY id;').trim().split('\n').map(Number);
  const att = (id, n, outcome, stage, code, enh, rcpt, text, msg) =>
    'INSERT INTO scalr_email_attempts (queue_id, n, at, worker, outcome, stage, smtp_code, enhanced, recipient, server_text, message) VALUES (' +
    [id, n, now - 50000 + n * 1000, q('host:1:abc'), q(outcome), q(stage), code, q(enh), q(rcpt), q(text), q(msg)].join(', ') + ');';
  sql(db, 'BEGIN;' +
    att(ids[0], 1, 'retry', 'CONNECT', 0, '', '', '', 'connection refused') +
    att(ids[0], 2, 'retry', 'DATA', 451, '4.3.0', '', 'try later ' + EVIL, '451 at DATA') +
    att(ids[3], 1, 'failed', 'RCPT', 550, '5.1.1', 'gone@example.com', 'no such user', 'refused') +
    'COMMIT;');
  return ids;
}

module.exports = {
  async setup(ctx) {
    const env = { errors: [], pwned: [] };
    env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-queue-'));
    env.db = path.join(env.dir, 'queue.db');
    env.inbox = await startQueueInbox('sqlite:' + env.db); // creates the tables
    env.ids = fill(env.db);
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
      name: 'queue api: without --queue the view is off',
      async fn(ctx) {
        const r = await request(ctx.http, 'GET', '/api/scalr/queue');
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { enabled: false });
        assert.equal((await request(ctx.http, 'GET', '/api/scalr/queue/messages')).status, 404);
        assert.equal((await request(ctx.http, 'GET', '/api/scalr/queuex')).status, 404);
      },
    },
    {
      name: 'queue api: counts by state, the queue named, held nothing else',
      async fn(ctx, env) {
        const r = await request(env.inbox.http, 'GET', '/api/scalr/queue');
        assert.equal(r.status, 200);
        assert.equal(r.json.enabled, true);
        assert.equal(r.json.queue, 'sqlite:' + env.db);
        assert.deepEqual(r.json.status.counts,
          { queued: 2, leased: 0, sent: 1, failed: 1, expired: 0, cancelled: 0, held: 1, unknown: 0 });
        assert.ok(r.json.status.oldest_queued_ms >= 50000, 'oldest queued age: ' + r.json.status.oldest_queued_ms);
        assert.ok(Math.abs(r.json.status.now - Date.now()) < 60000);
        assert.ok(Array.isArray(r.json.providers));
        assert.match(r.headers['content-security-policy'], /default-src 'none'/);
      },
    },
    {
      name: 'queue api: the messages waiting and why',
      async fn(ctx, env) {
        const r = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages?state=waiting');
        assert.equal(r.status, 200);
        const byId = new Map(r.json.items.map((it) => [it.id, it]));
        assert.deepEqual([...byId.keys()].sort((a, b) => a - b), [env.ids[0], env.ids[1], env.ids[4]]);
        const first = byId.get(env.ids[0]);
        assert.equal(first.state, 'queued');
        assert.equal(first.tenant, 'shop');
        assert.equal(first.attempts, 2);
        assert.match(first.last_error, /^451 4\.3\.0 try later/);
        assert.ok(first.run_at > Date.now() + 3000000, 'run_at in an hour');
        assert.deepEqual(first.rcpt_to, ['user1@example.com']);
        assert.equal(byId.get(env.ids[1]).lane, 'bulk');
        const failed = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages?state=failed');
        assert.deepEqual(failed.json.items.map((it) => it.id), [env.ids[3]]);
        assert.deepEqual(failed.json.items[0].rcpt_to, ['gone@example.com', 'ok@example.com']);
        const all = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages');
        assert.equal(all.json.items.length, 5);
        const two = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages?limit=2');
        assert.equal(two.json.items.length, 2);
        assert.equal((await request(env.inbox.http, 'GET', '/api/scalr/queue/messages?state=bogus')).status, 400);
        assert.equal((await request(env.inbox.http, 'POST', '/api/scalr/queue/messages')).status, 405);
        assert.equal((await request(env.inbox.http, 'DELETE', '/api/scalr/queue/messages/' + env.ids[0])).status, 405);
      },
    },
    {
      name: 'queue api: one message with its attempt history',
      async fn(ctx, env) {
        const r = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages/' + env.ids[0]);
        assert.equal(r.status, 200);
        assert.equal(r.json.item.id, env.ids[0]);
        assert.equal(r.json.item.message_id, '<m1@acme.test>');
        assert.deepEqual(r.json.attempts.map((a) => [a.n, a.outcome, a.stage, a.smtp_code, a.enhanced]),
          [[1, 'retry', 'CONNECT', null, ''], [2, 'retry', 'DATA', 451, '4.3.0']]);
        const f = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages/' + env.ids[3]);
        assert.equal(f.json.attempts[0].recipient, 'gone@example.com');
        assert.equal(f.json.attempts[0].server_text, 'no such user');
        const none = await request(env.inbox.http, 'GET', '/api/scalr/queue/messages/999999');
        assert.equal(none.status, 404);
        for (const bad of ['abc', '0', '-1', '1x', '99999999999999999999999'])
          assert.equal((await request(env.inbox.http, 'GET', '/api/scalr/queue/messages/' + bad)).status, 404, bad);
      },
    },
    {
      name: 'queue: a bad --queue URL is a one-line error with exit 78 (EX_CONFIG)',
      async fn() {
        const r = await new Promise((resolve) => {
          const p = spawn(bin(), ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--queue', 'ftp://example.com/q'],
            { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          p.stderr.on('data', (d) => { err += d; });
          p.on('exit', (code) => resolve({ code, err }));
        });
        assert.equal(r.code, 78);
        assert.equal(r.err.trim().split('\n').length, 1, r.err);
        assert.match(r.err, /^scalr-email inbox: --queue: /);
      },
    },
    {
      name: 'queue ui: no Queue button without --queue',
      async fn(ctx, env) {
        await env.page.goto(ctx.http);
        await env.page.locator('#live.on').waitFor({ timeout: 10000 });
        await env.page.waitForTimeout(300); // queue.js has asked /api/scalr/queue by now
        assert.equal(await env.page.locator('#queue-toggle').count(), 0);
      },
    },
    {
      name: 'queue ui: counts, waiting messages and why, attempt history; nothing injected runs',
      async fn(ctx, env) {
        const page = env.page;
        await page.goto(env.inbox.http);
        await page.locator('#queue-toggle').click();
        await page.locator('#queue-view').waitFor({ state: 'visible' });
        assert.equal(await page.locator('main.panes').isHidden(), true);
        await page.locator('#q-rows tr').first().waitFor();
        assert.equal(await page.textContent('#q-count-queued'), '2');
        assert.equal(await page.textContent('#q-count-held'), '1');
        assert.equal(await page.textContent('#q-count-failed'), '1');
        assert.equal(await page.locator('#q-rows tr').count(), 3); // waiting: queued, held
        const row = page.locator('#q-rows tr[data-id="' + env.ids[0] + '"]');
        assert.match(await row.locator('.q-why').textContent(), /451 4\.3\.0 try later .*<img src=x onerror/);
        assert.match(await row.locator('.q-run').textContent(), /^in (59|60) min$/);
        await row.click();
        await page.locator('#q-attempts tr').nth(1).waitFor();
        const attempts = await page.locator('#q-attempts tr').allTextContents();
        assert.equal(attempts.length, 2);
        assert.match(attempts[1], /451 4\.3\.0 try later/);
        assert.match(await page.textContent('#q-detail'), /<m1@acme\.test>/);
        // Another state through the chips: failed, with the refused recipient.
        await page.locator('.q-chip[data-state="failed"]').click();
        await page.locator('#q-rows tr[data-id="' + env.ids[3] + '"]').click();
        await page.locator('#q-attempts', { hasText: 'gone@example.com' }).waitFor();
        assert.match(await page.textContent('#q-attempts'), /550 5\.1\.1 no such user/);
        // Back to the mail.
        await page.locator('#queue-toggle').click();
        assert.equal(await page.locator('main.panes').isVisible(), true);
        assert.deepEqual(env.pwned, []);
        assert.deepEqual(env.errors, []);
        if (ctx.screenshots) {
          await page.locator('#queue-toggle').click();
          await page.locator('.q-chip[data-state="queued"]').click();
          await page.locator('#q-rows tr[data-id="' + env.ids[0] + '"]').click();
          await page.locator('#q-attempts tr').nth(1).waitFor();
          await page.screenshot({ path: path.join(ctx.screenshots, 'inbox-queue.png') });
        }
      },
    },
  ],
};
