// The MailHog-compatible API, checked with the `mailhog` npm client (which
// decodes subjects, bodies and attachments itself from MailHog's JSON), plus
// our chaos API and the security headers.
'use strict';

const assert = require('assert/strict');
const http = require('http');
const mailhog = require('mailhog');
const M = require('./lib/messages');

function request(ctx, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ctx.url.hostname, port: ctx.url.port, method, path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

const ANN = 'Ann Example <ann@example.com>';

async function fill(ctx) {
  await ctx.deliver({
    from: 'ann@example.com',
    to: ['bob@example.org'],
    raw: M.plain({ from: ANN, to: 'bob@example.org', subject: 'First: plain text', text: 'Just text.\r\nSecond line.' }),
  });
  await ctx.deliver({
    from: 'billing@shop.example',
    to: ['carol@example.net', 'dave@example.net'],
    raw: M.htmlMessage({
      from: 'Shop <billing@shop.example>',
      to: 'carol@example.net',
      cc: 'dave@example.net',
      subject: M.word('Grüße aus Köln') + ' — invoice 1042',
      text: 'Hello Carol, your invoice is ready. Café crème: 3,50 €',
      html: '<p>Hello <b>Carol</b>, your invoice is ready.</p>',
    }),
  });
  await ctx.deliver({
    from: 'reports@example.com',
    to: ['bob@example.org'],
    raw: M.withAttachments({
      from: 'Reports <reports@example.com>',
      to: 'bob@example.org',
      subject: 'Weekly report',
      text: 'The report is attached.',
      attachments: [{ name: 'report.csv', type: 'text/csv; charset=utf-8', data: 'week,sent\r\n47,1200\r\n' }],
    }),
  });
}

module.exports = {
  tests: [
    {
      name: 'api: deleteAll empties the inbox',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const res = await mh.deleteAll();
        assert.equal(res.statusCode, 200);
        const list = await mh.messages();
        assert.deepEqual([list.total, list.count, list.start, list.items.length], [0, 0, 0, 0]);
      },
    },
    {
      name: 'api: messages() lists newest first with total, count and start',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        await fill(ctx);
        const list = await mh.messages();
        assert.equal(list.total, 3);
        assert.equal(list.count, 3);
        assert.equal(list.start, 0);
        assert.deepEqual(list.items.map((m) => m.subject),
          ['Weekly report', 'Grüße aus Köln — invoice 1042', 'First: plain text']);
      },
    },
    {
      name: 'api: messages(start, limit) pages',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const page = await mh.messages(1, 1);
        assert.equal(page.total, 3);
        assert.equal(page.count, 1);
        assert.equal(page.start, 1);
        assert.equal(page.items[0].subject, 'Grüße aus Köln — invoice 1042');
      },
    },
    {
      name: 'api: the client decodes headers, text and HTML',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestFrom('billing@shop.example');
        assert.ok(m, 'latestFrom found the message');
        assert.equal(m.subject, 'Grüße aus Köln — invoice 1042');
        assert.equal(m.from, 'Shop <billing@shop.example>');
        assert.equal(m.to, 'carol@example.net');
        assert.equal(m.cc, 'dave@example.net');
        assert.equal(m.text, 'Hello Carol, your invoice is ready. Café crème: 3,50 €');
        assert.equal(m.html, '<p>Hello <b>Carol</b>, your invoice is ready.</p>');
        assert.ok(m.date instanceof Date && !isNaN(m.date), 'Date header parses');
        const age = Date.now() - m.deliveryDate.getTime();
        assert.ok(age >= -5000 && age < 120000, 'Created is a recent RFC 3339 time: ' + m.Created);
        const plain = await mh.latestContaining('Second line');
        assert.equal(plain.text, 'Just text.\r\nSecond line.');
        assert.equal(plain.from, ANN);
      },
    },
    {
      name: 'api: envelope and raw fields match MailHog\'s',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestFrom('billing@shop.example');
        assert.equal(typeof m.ID, 'string');
        assert.deepEqual(m.From, { Relays: null, Mailbox: 'billing', Domain: 'shop.example', Params: '' });
        assert.deepEqual(m.To.map((p) => p.Mailbox + '@' + p.Domain), ['carol@example.net', 'dave@example.net']);
        assert.equal(m.Raw.From, 'billing@shop.example');
        assert.deepEqual(m.Raw.To, ['carol@example.net', 'dave@example.net']);
        assert.match(m.Raw.Data, /(^|\r\n)From: Shop <billing@shop\.example>\r\n/);
        assert.equal(m.Content.Size, Buffer.byteLength(m.Raw.Data));
        assert.equal(m.MIME.Parts.length, 2);
        assert.match(m.MIME.Parts[0].Headers['Content-Type'][0], /^text\/plain/);
        assert.match(m.Content.Headers['Content-Type'][0], /^multipart\/alternative; boundary=/);
      },
    },
    {
      name: 'api: attachments are found and decoded by the client',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestContaining('report is attached');
        assert.equal(m.subject, 'Weekly report');
        assert.equal(m.text, 'The report is attached.');
        assert.equal(m.attachments.length, 1);
        const a = m.attachments[0];
        assert.equal(a.name, 'report.csv');
        assert.equal(a.type, 'text/csv; charset=utf-8');
        assert.equal(a.encoding, 'base64');
        assert.equal(mh.decode(a.Body, a.encoding), 'week,sent\r\n47,1200\r\n');
      },
    },
    {
      name: 'api: search by from, to and containing',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const from = await mh.search('ANN@example', 'from');
        assert.deepEqual(from.items.map((m) => m.subject), ['First: plain text']);
        const to = await mh.search('bob@example.org', 'to');
        assert.equal(to.total, 2);
        assert.deepEqual(to.items.map((m) => m.subject), ['Weekly report', 'First: plain text']);
        const cc = await mh.latestTo('dave@');
        assert.equal(cc.subject, 'Grüße aus Köln — invoice 1042');
        const body = await mh.search('report is ATTACHED');
        assert.deepEqual(body.items.map((m) => m.subject), ['Weekly report']);
        const none = await mh.search('no-such-text-anywhere');
        assert.deepEqual([none.total, none.count], [0, 0]);
        assert.equal(await mh.latestFrom('nobody@nowhere'), 0);
        const page = await mh.search('example', 'containing', 1, 1);
        assert.equal(page.total, 3);
        assert.equal(page.count, 1);
      },
    },
    {
      name: 'api: v1 get one and download the raw message',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestContaining('Second line');
        const one = await request(ctx, 'GET', '/api/v1/messages/' + m.ID);
        assert.equal(one.status, 200);
        assert.equal(JSON.parse(one.body).ID, m.ID);
        const dl = await request(ctx, 'GET', '/api/v1/messages/' + m.ID + '/download');
        assert.equal(dl.status, 200);
        assert.equal(dl.headers['content-type'], 'message/rfc822');
        assert.equal(dl.headers['content-disposition'], 'attachment; filename="' + m.ID + '.eml"');
        assert.equal(dl.body, m.Raw.Data + '\r\n', 'the .eml keeps the CRLF that MailHog\'s Data drops');
        assert.equal((await request(ctx, 'GET', '/api/v1/messages/999999')).status, 404);
      },
    },
    {
      name: 'api: deleteMessage removes one message',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestContaining('Second line');
        const res = await mh.deleteMessage(m.ID);
        assert.equal(res.statusCode, 200);
        const list = await mh.messages();
        assert.equal(list.total, 2);
        assert.ok(!list.items.some((x) => x.ID === m.ID));
        const again = await request(ctx, 'DELETE', '/api/v1/messages/' + m.ID);
        assert.equal(again.status, 404);
      },
    },
    {
      name: 'api: our message JSON has parts, attachments and decoded headers',
      async fn(ctx) {
        const mh = mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) });
        const m = await mh.latestContaining('report is attached');
        const res = await request(ctx, 'GET', '/api/scalr/messages/' + m.ID);
        const j = JSON.parse(res.body);
        assert.equal(j.subject, 'Weekly report');
        assert.equal(j.text, 'The report is attached.');
        assert.equal(j.html, null);
        assert.deepEqual(j.attachments.map((a) => [a.filename, a.type, a.size]), [['report.csv', 'text/csv', 20]]);
        const att = await request(ctx, 'GET', '/api/scalr/messages/' + m.ID + '/attachments/' + j.attachments[0].index);
        assert.equal(att.body, 'week,sent\r\n47,1200\r\n');
        assert.equal(att.headers['content-disposition'], 'attachment; filename="report.csv"; filename*=UTF-8\'\'report.csv');
        const billing = await mh.latestFrom('billing@');
        const k = JSON.parse((await request(ctx, 'GET', '/api/scalr/messages/' + billing.ID)).body);
        assert.equal(k.subject, 'Grüße aus Köln — invoice 1042');
        assert.deepEqual(k.rcpt, ['carol@example.net', 'dave@example.net']);
        assert.ok(k.headers.some((h) => h.name === 'Subject' && h.value === k.subject));
      },
    },
    {
      name: 'api: chaos rules are set, listed and cleared at run time',
      async fn(ctx) {
        const json = { 'Content-Type': 'application/json' };
        let r = await request(ctx, 'DELETE', '/api/scalr/chaos');
        assert.equal(r.status, 200);
        r = await request(ctx, 'POST', '/api/scalr/chaos', { headers: json, body: JSON.stringify({ rule: 'rcpt:550 5.1.1 no such user:match=bad@' }) });
        assert.equal(r.status, 200, r.body);
        const rules = JSON.parse(r.body).rules;
        assert.equal(rules.length, 1);
        assert.equal(rules[0].stage, 'rcpt');
        assert.equal(rules[0].code, 550);
        r = await request(ctx, 'POST', '/api/scalr/chaos', { headers: json, body: '{"rules": ["nonsense"]}' });
        assert.equal(r.status, 400);
        r = await request(ctx, 'POST', '/api/scalr/chaos', { headers: { 'Content-Type': 'text/plain' }, body: '{"rule": "mail:disconnect"}' });
        assert.equal(r.status, 415, 'a form-style POST (no CORS preflight) is refused');
        if (!ctx.stub) {
          const raw = M.plain({ from: 'x@example.com', to: 'bad@example.com', subject: 'refused', text: 'x' });
          await assert.rejects(ctx.deliver({ from: 'x@example.com', to: ['bad@example.com'], raw }), (e) => e.code === 550);
          await ctx.deliver({ from: 'x@example.com', to: ['good@example.com'], raw });
        }
        r = await request(ctx, 'DELETE', '/api/scalr/chaos');
        assert.deepEqual(JSON.parse(r.body), { rules: [] });
        if (!ctx.stub) {
          const raw = M.plain({ from: 'x@example.com', to: 'bad@example.com', subject: 'accepted', text: 'x' });
          await ctx.deliver({ from: 'x@example.com', to: ['bad@example.com'], raw });
        }
      },
    },
    {
      name: 'api: security headers, CSRF and DNS-rebinding guards',
      async fn(ctx) {
        const page = await request(ctx, 'GET', '/');
        assert.equal(page.status, 200);
        assert.equal(page.headers['x-content-type-options'], 'nosniff');
        assert.match(page.headers['content-security-policy'], /script-src 'self'/);
        assert.doesNotMatch(page.headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
        assert.doesNotMatch(page.body, /<script>|\son[a-z]+=/i, 'no inline scripts or handlers in the page');
        const api = await request(ctx, 'GET', '/api/v2/messages');
        assert.equal(api.headers['x-content-type-options'], 'nosniff');
        assert.match(api.headers['content-security-policy'], /default-src 'none'/);
        const csrf = await request(ctx, 'DELETE', '/api/v1/messages', { headers: { Origin: 'http://evil.example' } });
        assert.equal(csrf.status, 403);
        const rebind = await request(ctx, 'GET', '/api/v2/messages', { headers: { Host: 'evil.example:' + ctx.url.port } });
        assert.equal(rebind.status, 403);
        assert.equal((await mailhog({ host: ctx.url.hostname, port: Number(ctx.url.port) }).messages()).total > 0, true,
          'nothing was deleted by the refused request');
      },
    },
    {
      name: 'api: the Host guard refuses every unknown name, dotted or not, with or without a port',
      async fn(ctx) {
        const port = ctx.url.port;
        const before = (await mailhog({ host: ctx.url.hostname, port: Number(port) }).messages()).total;
        assert.ok(before > 0);
        for (const host of ['evil', 'evil:' + port, 'intranet', 'attacker:' + port, 'mail.internal:' + port,
          'localhost.evil.example', '127.0.0.1.nip.io:' + port, '[::2]:' + port, 'evil:x']) {
          for (const [method, p] of [['GET', '/api/v2/messages'], ['DELETE', '/api/v1/messages'],
            ['GET', '/api/scalr/events'], ['GET', '/']]) {
            const r = await request(ctx, method, p, { headers: { Host: host } });
            assert.equal(r.status, 403, method + ' ' + p + ' with Host ' + host);
            if (p === '/api/v2/messages' && !host.endsWith(':x'))
              assert.match(JSON.parse(r.body).error, /--allow-host/, 'the refusal names the flag that allows it');
            if (p === '/' && !host.endsWith(':x')) {
              assert.match(r.headers['content-type'], /^text\/plain/, 'a page for a browser');
              assert.match(r.body, /start it with --allow-host /);
            }
          }
        }
        assert.equal((await mailhog({ host: ctx.url.hostname, port: Number(port) }).messages()).total, before,
          'no refused DELETE deleted anything');
        for (const host of ['localhost:' + port, 'LOCALHOST', '127.0.0.1:' + port, '[::1]:' + port]) {
          const r = await request(ctx, 'GET', '/api/v2/messages', { headers: { Host: host } });
          assert.equal(r.status, 200, 'Host ' + host);
        }
      },
    },
    {
      name: 'api: smuggling sequences make one message, flagged for its bare line endings',
      skip: (ctx) => !ctx.smtp,
      skipWhy: 'needs the real SMTP side',
      async fn(ctx) {
        const { conversation, smuggling } = require('./lib/smtp');
        const list = async () => JSON.parse((await request(ctx, 'GET', '/api/scalr/messages?limit=500')).body);
        const before = (await list()).total;
        const codes = await conversation({ host: ctx.smtp.host, port: ctx.smtp.port, steps: smuggling('Smuggled?') });
        assert.deepEqual(codes, ['220', '250', '250', '250', '354', '250', '221'], 'one 250 for the data, no second message');
        // A clean message that forges the warning itself is not flagged: the flag is the inbox's, not a header.
        await ctx.deliver({ from: 'a@example.com', to: ['b@example.org'],
          raw: 'From: a@example.com\r\nTo: b@example.org\r\nSubject: Clean\r\nX-Inbox-Warning: forged\r\n\r\nclean\r\n' });
        const after = await list();
        assert.equal(after.total, before + 2);
        const flagged = after.items.find((m) => m.subject === 'Smuggled?');
        const clean = after.items.find((m) => m.subject === 'Clean');
        assert.match(flagged.warning, /^this client sent bare line endings \(3 bare LF, 1 bare CR\); Gmail and Exchange refuse such mail$/);
        assert.equal(clean.warning, null);
        const one = JSON.parse((await request(ctx, 'GET', '/api/scalr/messages/' + flagged.id)).body);
        assert.equal(one.warning, flagged.warning);
        assert.deepEqual([one.bare_lf, one.bare_cr], [3, 1]);
        assert.match(one.text, /first\n\.\nMAIL FROM:<smuggled@evil\.example>/, 'the smuggled commands are content');
        const cleanOne = JSON.parse((await request(ctx, 'GET', '/api/scalr/messages/' + clean.id)).body);
        assert.equal(cleanOne.warning, null);
        assert.deepEqual([cleanOne.bare_lf, cleanOne.bare_cr], [0, 0]);
        const raw = await request(ctx, 'GET', '/api/scalr/messages/' + flagged.id + '/raw');
        assert.ok(raw.body.startsWith('From: raw@example.com\r\n'), 'the raw message is what the client sent');
      },
    },
    {
      name: 'api: --allow-host lets a compose service name in, and only it',
      skip: (ctx) => ctx.stub,
      skipWhy: 'needs the real inbox binary',
      async fn(ctx) {
        const { spawn } = require('child_process');
        const bin = process.env.SCALR_EMAIL || require('path').resolve(__dirname, '../../../build/scalr-email');
        const child = spawn(bin, ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0',
          '--allow-host', 'mail.internal', '--allow-host', 'mailcatcher', '--allow-host', '[fd00::5]'],
        { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
          const base = await new Promise((resolve, reject) => {
            let out = '';
            const t = setTimeout(() => reject(new Error('no http line within 10 s')), 10000);
            child.stdout.setEncoding('utf8');
            child.stdout.on('data', (d) => {
              out += d;
              const m = /^http: (http:\/\/\S+)$/m.exec(out);
              if (m) { clearTimeout(t); resolve(new URL(m[1])); }
            });
          });
          const c2 = { url: base };
          for (const [host, want] of [['mail.internal:' + base.port, 200], ['mail.internal', 200],
            ['MAILCATCHER', 200], ['[fd00::5]:' + base.port, 200], ['mail.internal.evil:' + base.port, 403],
            ['other', 403], ['[fd00::6]', 403]]) {
            for (const [method, p] of [['GET', '/api/v2/messages'], ['GET', '/api/scalr/events'], ['DELETE', '/api/v1/messages']]) {
              if (p === '/api/scalr/events' && want === 200) continue; // a stream that stays open
              const r = await request(c2, method, p, { headers: { Host: host } });
              assert.equal(r.status, want, method + ' ' + p + ' with Host ' + host);
            }
          }
          // A port or a path is not a name: a one-line error, exit 64.
          const { spawnSync } = require('child_process');
          for (const bad of ['mail.internal:8025', 'http://mail.internal', '']) {
            const r = spawnSync(bin, ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--allow-host', bad], { encoding: 'utf8', timeout: 10000 });
            assert.equal(r.status, 64, '--allow-host ' + JSON.stringify(bad));
            assert.match(r.stderr, /--allow-host wants a host name/);
          }
        } finally {
          child.kill('SIGTERM');
        }
      },
    },
  ],
};
