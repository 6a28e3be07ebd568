// First paint of the inbox page in Debian's chromium (playwright-core from
// tests/inbox/web): node bench/inbox_paint.js URL RUNS
// Prints one JSON line: per run, first-paint and first-contentful-paint
// (Chromium's performance timing) and when the first list row existed.
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, '../tests/inbox/web/node_modules/playwright-core'));

(async () => {
  const url = process.argv[2];
  const runs = Number(process.argv[3] || 5);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  const out = [];
  try {
    for (let i = 0; i < runs; i++) {
      const ctx = await browser.newContext({ viewport: { width: 1360, height: 820 } });
      const page = await ctx.newPage();
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForSelector('#list .item');
      const m = await page.evaluate(() => {
        const p = {};
        for (const e of performance.getEntriesByType('paint')) p[e.name] = e.startTime;
        const nav = performance.getEntriesByType('navigation')[0];
        return { fp: p['first-paint'], fcp: p['first-contentful-paint'], dcl: nav.domContentLoadedEventEnd,
          rows: document.querySelectorAll('#list .item').length, title: document.title };
      });
      m.row = await page.evaluate(() => performance.now()); // upper bound: rows were there by now
      out.push(m);
      await ctx.close();
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
