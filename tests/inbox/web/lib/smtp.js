// A minimal SMTP client for the tests (EHLO, MAIL, RCPT, DATA, QUIT over
// plain TCP), so that no mail library from the registry is needed.
'use strict';
const net = require('net');

// Resolves with the final reply line of DATA; rejects with err.code = the
// SMTP reply code when the server refuses a step.
function sendMail({ host, port, from, to, raw, helo = 'tests.localhost', timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let waiting = null;
    const lines = [];
    const timer = setTimeout(() => fail(new Error('SMTP timeout')), timeoutMs);
    function fail(err) {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }
    sock.setEncoding('utf8');
    sock.on('error', fail);
    sock.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const reply = { code: Number(line.slice(0, 3)), text: lines.join('\n') };
          lines.length = 0;
          const w = waiting;
          waiting = null;
          if (w) w(reply);
        }
      }
    });
    const next = () => new Promise((res) => { waiting = res; });
    async function step(cmd, want) {
      const p = next();
      if (cmd !== null) sock.write(cmd + '\r\n');
      const r = await p;
      if (!want.includes(r.code)) {
        const err = new Error('SMTP ' + (cmd || 'greeting') + ' -> ' + r.text);
        err.code = r.code;
        throw err;
      }
      return r;
    }
    (async () => {
      await step(null, [220]);
      await step('EHLO ' + helo, [250]);
      await step('MAIL FROM:<' + from + '>', [250]);
      for (const rcpt of to) await step('RCPT TO:<' + rcpt + '>', [250, 251]);
      await step('DATA', [354]);
      // RFC 5321 4.5.2: CRLF line ends, dot-stuffing, then CRLF.CRLF
      let data = raw.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      if (!data.endsWith('\r\n')) data += '\r\n';
      const done = await step(data + '.', [250]);
      await step('QUIT', [221]).catch(() => {});
      clearTimeout(timer);
      sock.end();
      resolve(done.text);
    })().catch(fail);
  });
}

// Raw SMTP, one step at a time: waits for the greeting, then sends each step
// (CRLF added) after the previous reply.  Resolves with every reply's code,
// so a test sees exactly how many replies the server sent (a smuggled second
// message would show up as an extra 250).
function conversation({ host, port, steps, timeoutMs = 10000 }) {
  return new Promise((resolve, reject) => {
    const todo = steps.slice();
    const replies = [];
    const sock = net.connect({ host, port });
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('SMTP timeout after ' + replies)); }, timeoutMs);
    sock.setEncoding('latin1');
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('data', (d) => {
      buf += d;
      let m;
      while ((m = /^(\d{3}) [^\n]*\n/m.exec(buf))) {
        replies.push(m[1]);
        buf = buf.slice(m.index + m[0].length);
        const next = todo.shift();
        if (next === undefined) {
          clearTimeout(timer);
          sock.end();
          resolve(replies);
          return;
        }
        sock.write(next + '\r\n');
      }
    });
  });
}

// A message whose client sent bare line endings, with the smuggling
// sequences of CVE-2023-51764 in it: one message, never two.
function smuggling(subject) {
  return ['EHLO raw.test', 'MAIL FROM:<raw@example.com>', 'RCPT TO:<dev@example.org>', 'DATA',
    'From: raw@example.com\r\nTo: dev@example.org\r\nSubject: ' + subject + '\r\n\r\n' +
    'first\n.\nMAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<dev@example.org>\r\nDATA\r\n' +
    'Subject: smuggled\r\n\r\nsecond\n.\r\nthird\r.\r\n.', 'QUIT'];
}

module.exports = { sendMail, conversation, smuggling };
