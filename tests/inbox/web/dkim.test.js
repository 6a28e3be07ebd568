// The DKIM view of `scalr-email inbox --dkim-record FILE` in Debian's chromium
// (playwright-core): keys made by `scalr-email dkim keygen`, mail signed by
// `scalr-email send` (SMTP_DKIM_*), a copy with one body byte changed and one
// with a changed Subject relayed raw over SMTP, an unsigned message, one
// signed with a selector the records do not have, two signed by dkimpy
// (Debian's python3-dkim: over From and To only; expired), and a dual
// signature.  Each
// list row's badge and each signature's line and reason in the message view
// are asserted.  Then the verdict is shown to be stored when the message
// arrives (read from the --db file with Debian's sqlite3 before any page or
// API call), and made again when the inbox restarts on that file with other
// records.
'use strict';

const assert = require('assert/strict');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const { sendMail } = require('./lib/smtp');

const ROOT = path.resolve(__dirname, '../../..');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DOMAIN = 'acme.example';

function bin() {
  return process.env.SCALR_EMAIL || path.join(ROOT, 'build/scalr-email');
}

function startInbox(args) {
  const child = spawn(bin(), ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'].concat(args),
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('the DKIM inbox did not start within 10 s')), 10000);
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error('the DKIM inbox exited ' + code + ': ' + err)); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const s = /^smtp: (.+):(\d+)$/m.exec(out);
      const h = /^http: (http:\/\/\S+)$/m.exec(out);
      if (s && h) {
        clearTimeout(timer);
        resolve({ child, http: h[1], smtp: { host: s[1], port: Number(s[2]) } });
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

function get(base, p) {
  const url = new URL(p, base);
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(res.headers['content-type'].startsWith('application/json') ? JSON.parse(body) : body));
    }).on('error', reject);
  });
}

function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: Object.assign({}, process.env, env || {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(cmd + ' ' + args.join(' ') + ' exited ' + code + ': ' + err.trim()))));
  });
}

// `scalr-email send` to inbox, signed with the given selectors' keys (none: unsigned).
function send(env, inbox, subject, body, selectors) {
  const e = {
    SMTP_HOST: inbox.smtp.host, SMTP_PORT: String(inbox.smtp.port), SMTP_USE_TLS: 'false', SMTP_USE_SSL: 'false',
    SMTP_USERNAME: '', SMTP_PASSWORD: '', SMTP_FROM: 'app@' + DOMAIN,
  };
  if (selectors.length) {
    e.SMTP_DKIM_DOMAIN = DOMAIN;
    e.SMTP_DKIM_SELECTOR = selectors[0];
    e.SMTP_DKIM_KEY_FILE = env.keys[selectors[0]];
  }
  if (selectors.length > 1) {
    e.SMTP_DKIM_SELECTOR2 = selectors[1];
    e.SMTP_DKIM_KEY_FILE2 = env.keys[selectors[1]];
  }
  return run(bin(), ['send', '--to', 'dev@example.org', '--subject', subject, '--body', body], e);
}

// The newest message with this subject, once the inbox has it.
async function waitFor(base, subject) {
  for (let i = 0; i < 100; i++) {
    const list = await get(base, '/api/scalr/messages?limit=100');
    const m = list.items.find((x) => x.subject === subject);
    if (m) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no message "' + subject + '" arrived');
}

// One signature line of the open message: [badge, "d= s= a=", why, warnings].
async function sigLines(page) {
  return page.$$eval('#m-dkim .dkim-sig', (lis) => lis.map((li) => [
    li.querySelector('.dkim').dataset.dkim,
    li.querySelector('.dkim-tags').textContent,
    (li.querySelector('.dkim-why') || { textContent: '' }).textContent,
    Array.from(li.querySelectorAll('.dkim-warn')).map((w) => w.textContent),
  ]));
}

// The DKIM-Signature field Debian's dkimpy makes for msg (lib/dkimpy_sign.py).
function dkimpy(key, msg, args, selector) {
  const sig = execFileSync('/usr/bin/python3', [path.join(__dirname, 'lib/dkimpy_sign.py'), key,
    selector || 'rsa1', DOMAIN].concat(args), { input: msg }).toString();
  assert.match(sig, /^DKIM-Signature:/);
  return sig;
}

async function open(page, id) {
  await page.locator('#msg-' + id).click();
  await page.locator('#m-subject').waitFor({ state: 'visible' });
  await page.locator('#message:not([hidden]) #m-dkim').waitFor();
  await page.waitForFunction((want) => {
    const a = document.querySelector('#m-download');
    return a && a.getAttribute('href') === '/api/v1/messages/' + want + '/download';
  }, id);
}

module.exports = {
  async setup() {
    const env = { errors: [], keys: {}, ids: {} };
    env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-dkim-'));
    const records = [];
    for (const [sel, type] of [['rsa1', 'rsa'], ['ed1', 'ed25519'], ['gone', 'ed25519']]) {
      env.keys[sel] = path.join(env.dir, sel + '.key');
      const out = await run(bin(), ['dkim', 'keygen', '--domain', DOMAIN, '--selector', sel, '--type', type,
        '--out', env.keys[sel]]);
      records.push(out.split('\n')[0]);
      assert.match(records[records.length - 1], new RegExp('^' + sel + '\\._domainkey\\.acme\\.example\\.? TXT "v=DKIM1'));
    }
    // The key of selector "gone" is not published.
    env.records = path.join(env.dir, 'records.txt');
    fs.writeFileSync(env.records, '# published keys\n' + records.slice(0, 2).join('\n') + '\n');
    env.allRecords = path.join(env.dir, 'all-records.txt');
    fs.writeFileSync(env.allRecords, records.join('\n') + '\n');
    env.db = path.join(env.dir, 'inbox.db');
    env.inbox = await startInbox(['--dkim-record', env.records, '--db', env.db]);
    env.browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
    env.page = await (await env.browser.newContext({ viewport: { width: 1360, height: 820 } })).newPage();
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
      name: 'dkim: good, tampered, unsigned, unknown-key, partly signed, expired and dual mail; each verdict stored on arrival',
      timeout: 60000,
      async fn(ctx, env) {
        const base = env.inbox.http;
        await send(env, env.inbox, 'Signed RSA', 'Hello from Acme\n', ['rsa1']);
        const good = await waitFor(base, 'Signed RSA');
        // Stored with the message when it arrived: the file has the verdict
        // before anything asked for a list or the message.
        const stored = execFileSync('sqlite3', [env.db, 'SELECT dkim FROM messages WHERE id = ' + good.id]).toString();
        assert.equal(JSON.parse(stored).status, 'pass');

        // Relayed raw with one body byte changed, and with another Subject.
        const raw = await get(base, '/api/scalr/messages/' + good.id + '/raw');
        assert.match(raw, /Hello from Acme/);
        const smtp = { host: env.inbox.smtp.host, port: env.inbox.smtp.port, from: 'app@' + DOMAIN, to: ['dev@example.org'] };
        await sendMail(Object.assign({ raw: raw.replace('Hello from Acme', 'Hello from Acmf').replace('Subject: Signed RSA', 'Subject: Body changed') }, smtp));
        // (the Subject is signed too, so the body copy changes it: the body hash fails first)
        await sendMail(Object.assign({ raw: raw.replace('Subject: Signed RSA', 'Subject: Subject changed') }, smtp));
        await send(env, env.inbox, 'Not signed', 'plain\n', []);
        await send(env, env.inbox, 'Unknown selector', 'who signs?\n', ['gone']);
        await send(env, env.inbox, 'Dual', 'two signatures\n', ['rsa1', 'ed1']);
        // dkimpy signs From and To only: it verifies, but the view warns.
        const plain = 'From: app@' + DOMAIN + '\r\nTo: dev@example.org\r\nSubject: Signed by dkimpy\r\n' +
          'Date: Fri, 04 Dec 2026 08:00:00 +0000\r\nMessage-ID: <dkimpy.1@acme.example>\r\n\r\nSigned elsewhere.\r\n';
        const sig = dkimpy(env.keys.rsa1, plain, ['--headers', 'from,to']);
        await sendMail(Object.assign({ raw: sig + '\r\n' + plain }, smtp));
        // dkimpy signs as in 2023 with x= ten minutes later: expired.
        const old = plain.replace('Signed by dkimpy', 'Expired').replace('dkimpy.1@', 'dkimpy.2@');
        await sendMail(Object.assign({ raw: dkimpy(env.keys.rsa1, old, ['--expired']) + '\r\n' + old }, smtp));

        const want = {
          'Signed RSA': 'pass', 'Body changed': 'fail', 'Subject changed': 'fail', 'Not signed': 'none',
          'Unknown selector': 'nokey', Dual: 'pass', 'Signed by dkimpy': 'pass', Expired: 'fail',
        };
        for (const s of Object.keys(want)) env.ids[s] = (await waitFor(base, s)).id;

        // The list: one badge per row.
        const page = env.page;
        await page.goto(base);
        await page.locator('#list .item').nth(Object.keys(want).length - 1).waitFor();
        for (const [s, status] of Object.entries(want)) {
          const badge = page.locator('#msg-' + env.ids[s] + ' .dkim');
          assert.equal(await badge.getAttribute('data-dkim'), status, s);
        }
        assert.equal(await page.locator('#msg-' + env.ids['Signed RSA'] + ' .dkim').textContent(), 'DKIM pass');
        assert.equal(await page.locator('#msg-' + env.ids['Body changed'] + ' .dkim').textContent(), 'DKIM fail');
        assert.equal(await page.locator('#msg-' + env.ids['Unknown selector'] + ' .dkim').textContent(), 'DKIM no key');
        assert.equal(await page.locator('#msg-' + env.ids['Not signed'] + ' .dkim').textContent(), 'no DKIM');

        // The message view: one line per signature, with the reason.
        await open(page, env.ids['Signed RSA']);
        assert.deepEqual(await sigLines(page), [['pass', 'd=acme.example s=rsa1 a=rsa-sha256', '', []]]);
        await open(page, env.ids['Body changed']);
        assert.deepEqual(await sigLines(page), [['fail', 'd=acme.example s=rsa1 a=rsa-sha256',
          'body hash mismatch: the body changed after signing', []]]);
        if (ctx.screenshots) { // README: docs/inbox-dkim.png
          await page.mouse.move(900, 790);
          await page.waitForTimeout(1800); // let the "new mail" highlight fade
          await page.screenshot({ path: path.join(ctx.screenshots, 'inbox-dkim.png') });
        }
        await open(page, env.ids['Subject changed']);
        assert.deepEqual(await sigLines(page), [['fail', 'd=acme.example s=rsa1 a=rsa-sha256',
          'signature mismatch: a signed header changed, or the wrong key', []]]);
        await open(page, env.ids['Unknown selector']);
        assert.deepEqual(await sigLines(page), [['nokey', 'd=acme.example s=gone a=ed25519-sha256',
          'no key record for gone._domainkey.acme.example', []]]);
        await open(page, env.ids.Dual);
        assert.deepEqual(await sigLines(page), [['pass', 'd=acme.example s=rsa1 a=rsa-sha256', '', []],
          ['pass', 'd=acme.example s=ed1 a=ed25519-sha256', '', []]]);
        await open(page, env.ids['Not signed']);
        assert.equal(await page.locator('#m-dkim .dkim-sig').count(), 0);
        assert.equal(await page.locator('#m-dkim .dkim').getAttribute('data-dkim'), 'none');
        assert.match(await page.textContent('#m-dkim'), /not signed/);
        await open(page, env.ids['Signed by dkimpy']);
        const [line] = await sigLines(page);
        assert.deepEqual(line.slice(0, 3), ['pass', 'd=acme.example s=rsa1 a=rsa-sha256', '']);
        for (const f of ['Subject', 'Date', 'Message-ID'])
          assert.ok(line[3].includes('⚠ ' + f + ' is not signed: it could be changed after signing'), f + ': ' + line[3]);
        assert.ok(!line[3].some((w) => /^⚠ (From|To) is not signed/.test(w)), String(line[3]));
        // h=from:to names From once: a second From added above would not break it
        assert.ok(line[3].some((w) => /^⚠ From is not oversigned: a second From could be added above it/.test(w)), String(line[3]));
        assert.equal(await page.locator('#m-dkim .dkim-note').count(), 0); // records were given
        await open(page, env.ids.Expired);
        assert.deepEqual(await sigLines(page), [['fail', 'd=acme.example s=rsa1 a=rsa-sha256',
          'the signature expired at 2023-11-14 22:23:20 UTC (x=)', []]]);

        // The JSON API says the same.
        const view = await get(base, '/api/scalr/messages/' + env.ids['Body changed'] + '/dkim');
        assert.equal(view.status, 'fail');
        assert.equal(view.records, true);
        assert.equal(view.signatures[0].why, 'body hash mismatch: the body changed after signing');
        // The MailHog-compatible API keeps its shape: no DKIM there.
        const mh = await get(base, '/api/v2/messages?limit=50');
        assert.ok(mh.items.every((m) => !('dkim' in m) && !('Dkim' in m)));
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'dkim: restarted on its --db with the missing record, the inbox checks the stored mail again',
      timeout: 60000,
      async fn(ctx, env) {
        assert.ok(env.ids['Unknown selector'], 'needs the first test');
        await stop(env.inbox.child);
        env.inbox = await startInbox(['--dkim-record', env.allRecords, '--db', env.db]);
        const base = env.inbox.http;
        // The stored verdicts were made with other records: stale until listed.
        const before = execFileSync('sqlite3', [env.db, 'SELECT count(*) FROM messages WHERE dkim IS NOT NULL']).toString().trim();
        assert.equal(before, '8');
        const page = env.page;
        await page.goto(base);
        await page.locator('#msg-' + env.ids['Unknown selector'] + ' .dkim').waitFor();
        assert.equal(await page.locator('#msg-' + env.ids['Unknown selector'] + ' .dkim').getAttribute('data-dkim'), 'pass');
        assert.equal(await page.locator('#msg-' + env.ids['Body changed'] + ' .dkim').getAttribute('data-dkim'), 'fail');
        await open(page, env.ids['Unknown selector']);
        assert.deepEqual(await sigLines(page), [['pass', 'd=acme.example s=gone a=ed25519-sha256', '', []]]);
        // Made again once, then kept: every row now carries the new generation.
        const gens = execFileSync('sqlite3', [env.db, 'SELECT count(DISTINCT dkim_gen) FROM messages']).toString().trim();
        assert.equal(gens, '1');
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'dkim: a message over 8 MiB is checked when opened, and its row then shows the verdict',
      timeout: 60000,
      async fn(ctx, env) {
        const base = env.inbox.http;
        const big = path.join(env.dir, 'big.bin');
        fs.writeFileSync(big, require('crypto').randomBytes(9 << 20));
        const e = {
          SMTP_HOST: env.inbox.smtp.host, SMTP_PORT: String(env.inbox.smtp.port), SMTP_USE_TLS: 'false',
          SMTP_USE_SSL: 'false', SMTP_USERNAME: '', SMTP_PASSWORD: '', SMTP_FROM: 'app@' + DOMAIN,
          SMTP_DKIM_DOMAIN: DOMAIN, SMTP_DKIM_SELECTOR: 'ed1', SMTP_DKIM_KEY_FILE: env.keys.ed1,
        };
        await run(bin(), ['send', '--to', 'dev@example.org', '--subject', 'Big signed', '--body', 'see attached',
          '--attach', big], e);
        const m = await waitFor(base, 'Big signed');
        assert.equal(m.dkim, null); // spooled on arrival, too big to check while listing
        const page = env.page;
        await page.goto(base);
        const badge = page.locator('#msg-' + m.id + ' .dkim');
        assert.equal(await badge.getAttribute('data-dkim'), 'unknown');
        assert.equal(await badge.textContent(), 'DKIM ?');
        await open(page, m.id);
        assert.deepEqual(await sigLines(page), [['pass', 'd=acme.example s=ed1 a=ed25519-sha256', '', []]]);
        await page.locator('#msg-' + m.id + ' .dkim[data-dkim="pass"]').waitFor();
        // kept: the next list has it without opening
        assert.equal((await waitFor(base, 'Big signed')).dkim, 'pass');
        assert.deepEqual(env.errors, []);
      },
    },
    {
      name: 'dkim: without --dkim-record the view says the keys were not checked, and why each fails',
      timeout: 30000,
      async fn(ctx, env) {
        const other = await startInbox([]);
        try {
          await send(env, other, 'No records', 'hello\n', ['ed1']);
          const m = await waitFor(other.http, 'No records');
          assert.equal(m.dkim, 'nokey');
          const page = env.page;
          await page.goto(other.http);
          await open(page, m.id);
          assert.deepEqual(await sigLines(page), [['nokey', 'd=acme.example s=ed1 a=ed25519-sha256',
            'no key record for ed1._domainkey.acme.example', []]]);
          assert.match(await page.textContent('#m-dkim .dkim-note'), /--dkim-record FILE/);
          assert.deepEqual(env.errors, []);
        } finally {
          await stop(other.child);
        }
      },
    },
  ],
};
