// Sample messages (RFC 5322 text with CRLF line ends) for the tests.
'use strict';

const b64 = (s) => Buffer.from(s).toString('base64').replace(/.{76}/g, '$&\r\n');
const qp = (s) => Buffer.from(s).toString('binary').replace(/[^\x20-\x3c\x3e-\x7e\r\n]/g,
  (c) => '=' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
// RFC 2047 "B" word
const word = (s) => '=?UTF-8?B?' + Buffer.from(s).toString('base64') + '?=';
let seq = 0;

function headers({ from, to, cc, subject, date, extra }) {
  const h = [
    'From: ' + from,
    'To: ' + to,
    cc ? 'Cc: ' + cc : null,
    'Subject: ' + subject,
    'Date: ' + (date || new Date().toUTCString().replace('GMT', '+0000')),
    'Message-ID: <test-' + Date.now() + '-' + (++seq) + '@tests.localhost>',
    'MIME-Version: 1.0',
  ].concat(extra || []);
  return h.filter(Boolean).join('\r\n');
}

function plain(o) {
  return headers(o) + '\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: quoted-printable\r\n\r\n' + qp(o.text) + '\r\n';
}

// multipart/alternative: text (quoted-printable) and HTML (base64)
function alternative(o, boundary = 'alt-' + seq) {
  return 'Content-Type: multipart/alternative; boundary="' + boundary + '"\r\n\r\n' +
    '--' + boundary + '\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: quoted-printable\r\n\r\n' + qp(o.text) + '\r\n' +
    '--' + boundary + '\r\nContent-Type: text/html; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: base64\r\n\r\n' + b64(o.html) + '\r\n' +
    '--' + boundary + '--\r\n';
}

function htmlMessage(o) {
  return headers(o) + '\r\n' + alternative(o);
}

// multipart/mixed { alternative, attachments... }
function withAttachments(o) {
  const b = 'mix-' + (++seq);
  let s = headers(o) + '\r\nContent-Type: multipart/mixed; boundary="' + b + '"\r\n\r\n';
  s += '--' + b + '\r\n' + (o.html ? alternative(o) : 'Content-Type: text/plain; charset=utf-8\r\n\r\n' + o.text + '\r\n');
  for (const a of o.attachments) {
    s += '--' + b + '\r\nContent-Type: ' + a.type + '\r\n' +
      (a.cid ? 'Content-ID: <' + a.cid + '>\r\nContent-Disposition: inline\r\n'
        : 'Content-Disposition: attachment; filename="' + a.name + '"\r\n') +
      'Content-Transfer-Encoding: base64\r\n\r\n' + b64(a.data) + '\r\n';
  }
  return s + '--' + b + '--\r\n';
}

// A 1x1 blue PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

module.exports = { b64, qp, word, plain, htmlMessage, withAttachments, PNG };
