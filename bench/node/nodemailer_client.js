#!/usr/bin/env node
// nodemailer contender: its SMTP pool, configured like scalr-email from SMTP_* variables.
//
//   node nodemailer_client.js COUNT MAX_CONNECTIONS BODY_FILE [ATTACHMENT]
//
// All COUNT messages are queued at once; the pool sends them over at most
// MAX_CONNECTIONS connections.  Exits 0 only when every message was accepted.
'use strict';
const fs = require('fs');
const path = require('path');
const nodemailer = require('nodemailer');

const [count, maxConnections, bodyFile, attachment] = process.argv.slice(2);
const bool = (v, d) => (v === undefined || v === '' ? d : ['1', 'true', 'yes'].includes(v.toLowerCase()));
const useTls = bool(process.env.SMTP_USE_TLS, true);
const options = {
    pool: true,
    maxConnections: Number(maxConnections),
    maxMessages: Infinity,
    host: process.env.SMTP_HOST,
    port: Number(process.env.SMTP_PORT || 587),
    secure: false,
    requireTLS: useTls,
    ignoreTLS: !useTls,
    connectionTimeout: 30000,
    socketTimeout: 30000,
};
if (process.env.SSL_CERT_FILE)
    options.tls = { ca: fs.readFileSync(process.env.SSL_CERT_FILE) };
if (process.env.SMTP_USERNAME)
    options.auth = { user: process.env.SMTP_USERNAME, pass: process.env.SMTP_PASSWORD || '' };

const transport = nodemailer.createTransport(options);
const body = fs.readFileSync(bodyFile, 'utf8');
const jobs = [];
for (let i = 0; i < Number(count); i++) {
    const msg = {
        from: process.env.SMTP_FROM || 'bench@scalr.local',
        to: process.env.BENCH_TO || 'rcpt@example.com',
        subject: `Benchmark message ${i}`,
        text: body,
    };
    if (attachment)
        msg.attachments = [{ filename: path.basename(attachment), path: attachment }];
    jobs.push(transport.sendMail(msg));
}
Promise.allSettled(jobs).then((results) => {
    transport.close();
    const failed = results.filter((r) => r.status !== 'fulfilled');
    if (failed.length) {
        console.error(`${failed.length} of ${results.length} failed: ${failed[0].reason}`);
        process.exitCode = 1;
    }
});
