// mustache.js over JSON Lines, the same protocol as driver.c (spec mode only).
'use strict';
const path = require('path');
const Mustache = require(path.join(__dirname, 'node', 'node_modules', 'mustache'));
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let res;
  try {
    const c = JSON.parse(line);
    res = { o: Mustache.render(c.t, c.d, c.p || {}) };
  } catch (e) {
    res = { e: String(e.message || e) };
  }
  process.stdout.write(JSON.stringify(res) + '\n');
});
