// Runs the inbox's web tests against a real `scalr-email inbox`:
//   api.test.js  the MailHog-compatible API through the `mailhog` npm client
//   ui.test.js   the web UI in Debian's chromium, driven by playwright-core
//   queue.test.js the Queue view of a second inbox started with --queue
//   templates.test.js the Templates view of a second inbox started with --templates
//   tools.test.js release from the UI (a second inbox relaying into this one),
//                 device widths and dark mode in the HTML preview
//   dkim.test.js  the DKIM badges and reasons of inboxes started with --dkim-record
// Ends with the line "inbox-web: N passed, N failed".
//
// Which inbox:
//   SCALR_EMAIL=path      the scalr-email binary (default: build/scalr-email),
//                         started as `scalr-email inbox --smtp 127.0.0.1:0 --http 127.0.0.1:0`
//   INBOX_BIN=path        a program taking the inbox's options directly
//   INBOX_TESTSERVER=path a harness without SMTP that reads "ADD from rcpts file" on stdin
// Options: --screenshots DIR (write inbox-list.png and inbox-message.png there),
//          --only api|ui|queue|templates|tools|dkim, a test-name filter as the last argument.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { sendMail } = require('./lib/smtp');

const ROOT = path.resolve(__dirname, '../../..');

function parseArgs(argv) {
  const o = { screenshots: null, only: null, filter: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--screenshots') o.screenshots = path.resolve(argv[++i]);
    else if (argv[i] === '--only') o.only = argv[++i];
    else o.filter = argv[i];
  }
  return o;
}

// Start the inbox and learn its addresses from what it prints when ready.
function startInbox() {
  let cmd;
  let args;
  const stub = process.env.INBOX_TESTSERVER;
  if (stub) {
    cmd = stub;
    args = ['0'];
  } else if (process.env.INBOX_BIN) {
    cmd = process.env.INBOX_BIN;
    args = ['--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'];
  } else {
    cmd = process.env.SCALR_EMAIL || path.join(ROOT, 'build/scalr-email');
    args = ['inbox', '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'];
  }
  if (!fs.existsSync(cmd)) throw new Error(cmd + ' not found (build it with make, or set SCALR_EMAIL)');
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const inbox = { child, stub: Boolean(stub), smtp: null, http: null, pending: [], cmd };
    const timer = setTimeout(() => reject(new Error('the inbox did not start within 10 s')), 10000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error('the inbox exited (' + (code !== null ? code : sig) + ')'));
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i).trim();
        out = out.slice(i + 1);
        let m;
        if ((m = /^smtp: (.+):(\d+)$/.exec(line))) inbox.smtp = { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
        else if ((m = /^http: (http:\/\/\S+)$/.exec(line)) || (m = /^(http:\/\/\S+)$/.exec(line))) inbox.http = m[1];
        else if ((m = /^ID (\d+)$/.exec(line)) && inbox.pending.length) inbox.pending.shift()(Number(m[1]));
        if (inbox.http && (inbox.smtp || inbox.stub)) {
          clearTimeout(timer);
          resolve(inbox);
        }
      }
    });
  });
}

function stopInbox(inbox) {
  return new Promise((resolve) => {
    if (!inbox || inbox.child.exitCode !== null) return resolve();
    const t = setTimeout(() => inbox.child.kill('SIGKILL'), 5000);
    inbox.child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    if (inbox.stub) inbox.child.stdin.end('QUIT\n');
    else inbox.child.kill('SIGTERM');
  });
}

let tmpSeq = 0;
// Deliver a raw message: over SMTP, or through the harness's stdin.
function makeDeliver(inbox) {
  return async function deliver({ from, to, raw }) {
    if (!inbox.stub)
      return sendMail({ host: inbox.smtp.host, port: inbox.smtp.port, from, to, raw });
    const file = path.join(os.tmpdir(), 'inbox-web-' + process.pid + '-' + (++tmpSeq) + '.eml');
    fs.writeFileSync(file, raw.replace(/\r?\n/g, '\r\n'));
    const id = new Promise((res) => inbox.pending.push(res));
    inbox.child.stdin.write('ADD ' + (from || '-') + ' ' + to.join(',') + ' ' + file + '\n');
    await id;
    fs.unlinkSync(file);
  };
}

// `scalr-email send` to the inbox, when the binary is there (not in harness mode).
function makeCliSend(inbox) {
  const bin = process.env.SCALR_EMAIL || path.join(ROOT, 'build/scalr-email');
  if (inbox.stub || !fs.existsSync(bin)) return null;
  return function cliSend(args) {
    const env = Object.assign({}, process.env, {
      SMTP_HOST: inbox.smtp.host,
      SMTP_PORT: String(inbox.smtp.port),
      SMTP_USE_TLS: 'false',
      SMTP_USE_SSL: 'false',
      SMTP_USERNAME: '',
      SMTP_PASSWORD: '',
      SMTP_FROM: 'app@scalr.localhost',
    });
    return new Promise((resolve, reject) => {
      const p = spawn(bin, ['send'].concat(args), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { out += d; });
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error('scalr-email send exited ' + code + ': ' + out.trim()))));
    });
  };
}

function withTimeout(promise, ms, name) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(name + ': timed out after ' + ms + ' ms')), ms); }),
  ]).finally(() => clearTimeout(t));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let passed = 0;
  let skipped = 0;
  let failed = 0;
  let inbox = null;
  try {
    inbox = await startInbox();
    const ctx = {
      http: inbox.http,
      url: new URL(inbox.http),
      smtp: inbox.smtp,
      stub: inbox.stub,
      deliver: makeDeliver(inbox),
      cliSend: makeCliSend(inbox),
      screenshots: opts.screenshots,
    };
    console.log('# inbox at ' + inbox.http + (inbox.smtp ? ' smtp ' + inbox.smtp.host + ':' + inbox.smtp.port : ' (harness)'));
    const suites = [];
    if (!opts.only || opts.only === 'api') suites.push(require('./api.test'));
    if (!opts.only || opts.only === 'ui') suites.push(require('./ui.test'));
    if ((!opts.only || opts.only === 'queue') && !inbox.stub) suites.push(require('./queue.test'));
    if ((!opts.only || opts.only === 'templates') && !inbox.stub) suites.push(require('./templates.test'));
    if (!opts.only || opts.only === 'tools') suites.push(require('./tools.test'));
    if ((!opts.only || opts.only === 'dkim') && !inbox.stub) suites.push(require('./dkim.test'));
    for (const suite of suites) {
      const env = suite.setup ? await suite.setup(ctx) : {};
      try {
        for (const t of suite.tests) {
          if (opts.filter && !t.name.includes(opts.filter)) continue;
          if (t.skip && t.skip(ctx)) {
            skipped++;
            console.log('ok - ' + t.name + ' # SKIP ' + t.skipWhy);
            continue;
          }
          try {
            await withTimeout(t.fn(ctx, env), t.timeout || 30000, t.name);
            passed++;
            console.log('ok - ' + t.name);
          } catch (e) {
            failed++;
            console.log('not ok - ' + t.name + '\n    ' + String(e && e.stack ? e.stack : e).split("\n").slice(0, 16).join('\n    '));
          }
        }
      } finally {
        if (suite.teardown) await suite.teardown(ctx, env);
      }
    }
  } catch (e) {
    failed++;
    console.log('not ok - setup\n    ' + String(e && e.stack ? e.stack : e));
  } finally {
    await stopInbox(inbox);
  }
  // A skip is never a pass: it is counted and shown on its own.
  console.log('inbox-web: ' + passed + ' passed, ' + failed + ' failed' +
              (skipped ? ', ' + skipped + ' skipped' : ''));
  process.exitCode = failed ? 1 : 0;
}

main();
