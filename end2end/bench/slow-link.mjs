// Browser benchmark: the signed-in dashboard over a slow link, as KRaft's users in places far
// from any cloud region see it. Debian's Chromium with CDP network emulation (default 1.6 Mbit/s
// down, 750 kbit/s up, 150 ms round trip; KRAFT_BENCH_KBPS and KRAFT_BENCH_RTT_MS change it)
// loads /clusters cold (empty cache), then warm (the same browser, a new navigation). Prints the
// first contentful paint, the time until the page is hydrated (`<html data-hydrated>`, set by the
// app's first effect), and the bytes that crossed the link. A benchmark, not a test: it prints
// figures and fails only if it cannot run.
//
//     scripts/site.sh release && cargo build --release -p server
//     node end2end/bench/slow-link.mjs
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const port = Number(process.env.KRAFT_BENCH_PORT ?? 3978);
const base = `http://127.0.0.1:${port}`;
const kbps = Number(process.env.KRAFT_BENCH_KBPS ?? 1600);
const rtt = Number(process.env.KRAFT_BENCH_RTT_MS ?? 150);
const dataDir = mkdtempSync(join(tmpdir(), 'kraft-bench-'));

const server = spawn(process.env.KRAFT_BIN ?? join(root, 'target/release/kraft'), ['serve'], {
  env: {
    ...process.env,
    KRAFT_ADDR: `127.0.0.1:${port}`,
    KRAFT_DATA_DIR: dataDir,
    KRAFT_SITE_ROOT: process.env.KRAFT_SITE_ROOT ?? join(root, 'target/site'),
    RUST_LOG: 'warn',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
process.on('exit', () => server.kill());

for (let i = 0; ; i++) {
  try { if ((await fetch(`${base}/healthz`)).ok) break; } catch { /* not yet */ }
  if (i > 600) throw new Error('kraft did not start');
  await new Promise((r) => setTimeout(r, 100));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--disable-gpu'],
});
const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
// When the page became interactive, by the page's own clock.
// (The document, not its element: init scripts run before the parser has made <html>.)
await context.addInitScript(() => {
  new MutationObserver((_, observer) => {
    if (document.documentElement?.hasAttribute('data-hydrated')) {
      window.__hydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
});

// Sign up over the fast link: the benchmark is about loading the dashboard.
const page = await context.newPage();
await page.goto(`${base}/register`);
await page.waitForSelector('html[data-hydrated]');
const password = 'correct horse battery staple';
await page.getByLabel('Email', { exact: true }).fill('ada@example.org');
await page.getByLabel('Username', { exact: true }).fill('ada');
await page.getByLabel('Password', { exact: true }).fill(password);
await page.getByLabel('Repeat the password', { exact: true }).fill(password);
await page.getByRole('button', { name: 'Create account' }).click();
await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
await page.close();

async function load(label, { clearCache }) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  if (clearCache) await cdp.send('Network.clearBrowserCache');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: rtt,
    downloadThroughput: (kbps * 1000) / 8,
    uploadThroughput: (750 * 1000) / 8,
  });
  let bytes = 0;
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
  await page.goto(`${base}/clusters`, { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__hydratedAt !== undefined, null, { timeout: 120_000 });
  const { fcp, hydrated } = await page.evaluate(() => ({
    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
    hydrated: window.__hydratedAt,
  }));
  console.log(
    `${label.padEnd(5)} first contentful paint ${fcp.toFixed(0)} ms, interactive ${hydrated.toFixed(0)} ms, ` +
      `${(bytes / 1024).toFixed(0)} KiB over the link`,
  );
  await page.close();
}

console.log(`/clusters signed in, ${kbps} kbit/s down, ${rtt} ms RTT, 390 px wide:`);
await load('cold', { clearCache: true });
await load('warm', { clearCache: false });
await browser.close();
server.kill();
