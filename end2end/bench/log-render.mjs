// Browser benchmark of the log viewer: Debian's Chromium holding 100,000 lines.
//
// Starts the release kraft in zero-config mode (SQLite + simulated host), signs up, creates a
// cluster, opens its log viewer with "all retained", then has the simulated host write 20,000
// lines a second until the viewer holds 100,000. Prints the main-thread time Chromium spent
// (CDP Performance metrics), the longest task (Long Tasks API) and the longest gap between
// animation frames; then the same for filtering, clearing the filter and scrolling through
// 100,000 lines. A benchmark, not a test: it prints figures and fails only if it cannot run.
//
//     scripts/site.sh release && cargo build --release -p server
//     node end2end/bench/log-render.mjs
//
// KRAFT_BENCH_PROFILE=<dir> also profiles the first step: a Chromium timeline trace and a CPU
// profile are written there, and the main thread's busiest trace events and script functions
// (by self time) are printed. Function names of the WebAssembly need a bundle with its name
// section (`KRAFT_WASM_NAMES=1 scripts/site.sh release`).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const port = Number(process.env.KRAFT_BENCH_PORT ?? 3977);
const base = `http://127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'kraft-bench-'));
const TARGET = 100_000;
const ROW_PX = 20;
const RATE = 20_000;

const server = spawn(process.env.KRAFT_BIN ?? join(root, 'target/release/kraft'), ['serve'], {
  env: { ...process.env, KRAFT_ADDR: `127.0.0.1:${port}`, KRAFT_DATA_DIR: dataDir, KRAFT_SITE_ROOT: process.env.KRAFT_SITE_ROOT ?? join(root, 'target/site'), RUST_LOG: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
process.on('exit', () => server.kill());

function hostsim(method, path) {
  const config = readFileSync(join(dataDir, 'simulated-host.kubeconfig'), 'utf8');
  const field = (name) => new RegExp(`${name}: (\\S+)`).exec(config)[1];
  return new Promise((done, fail) => {
    const req = request(new URL(path, field('server')), {
      method,
      ca: Buffer.from(field('certificate-authority-data'), 'base64'),
      headers: { Authorization: `Bearer ${field('token')}` },
    }, (res) => { res.resume(); res.on('end', () => done(res.statusCode)); });
    req.on('error', fail);
    req.end();
  });
}

async function waitForServer() {
  for (let i = 0; i < 600; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('kraft did not start');
}

const ms = (x) => `${x.toFixed(0)} ms`;

await waitForServer();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--disable-gpu'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on('console', (m) => { if (m.type() === 'error') console.log(`browser error: ${m.text().slice(0, 300)}`); });
const cdp = await page.context().newCDPSession(page);
await cdp.send('Performance.enable');
const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));

// Sign up and create a cluster through the UI.
await page.goto(`${base}/register`);
await page.getByRole('button', { name: 'Create account' }).waitFor();
await page.waitForFunction(() => !document.querySelector('form button[type=submit]')?.disabled);
await page.getByLabel('Email', { exact: true }).fill('bench@example.org');
await page.getByLabel('Username', { exact: true }).fill('bench');
await page.getByLabel('Password', { exact: true }).fill('correct horse battery staple');
await page.getByLabel('Repeat the password', { exact: true }).fill('correct horse battery staple');
await page.getByRole('button', { name: 'Create account' }).click();
await page.getByRole('heading', { name: 'Your account', exact: true }).waitFor();
await page.goto(`${base}/clusters/new`);
await page.waitForFunction(() => !document.querySelector('form[aria-label="Create cluster"] button[type=submit]')?.disabled);
await page.getByLabel('Name', { exact: true }).fill('bench');
await page.getByRole('button', { name: 'Create cluster' }).click();
await page.locator('.page-head .phase', { hasText: 'Ready' }).waitFor({ timeout: 60_000 });
await page.getByLabel('Tail', { exact: true }).selectOption('all');
await page.getByRole('status', { name: 'Connection' }).filter({ hasText: 'live' }).waitFor();

// Watch the main thread.
await page.evaluate(() => {
  window.benchTasks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.benchTasks.push(e.duration); }).observe({ type: 'longtask' });
  window.benchGap = 0;
  let last = performance.now();
  const frame = (now) => { window.benchGap = Math.max(window.benchGap, now - last); last = now; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
});
const reset = () => page.evaluate(() => { window.benchTasks = []; window.benchGap = 0; });
const tasks = () => page.evaluate(() => ({ longest: Math.max(0, ...window.benchTasks), count: window.benchTasks.length, gap: window.benchGap }));
const held = () => page.evaluate((row) => Math.round(parseFloat(document.querySelector('.log-space').style.height) / row), ROW_PX);

const profileDir = process.env.KRAFT_BENCH_PROFILE;

// Self time per event name on the renderer's main thread: each complete event's duration less
// the events nested in it.
function traceSelfTimes(trace) {
  const events = trace.traceEvents ?? trace;
  const main = events.find((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const mine = events
    .filter((e) => e.ph === 'X' && main && e.pid === main.pid && e.tid === main.tid && e.dur !== undefined)
    .sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const self = new Map();
  const stack = [];
  for (const e of mine) {
    while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
    if (stack.length) { const parent = stack[stack.length - 1]; self.set(parent.name, (self.get(parent.name) ?? 0) - e.dur); }
    self.set(e.name, (self.get(e.name) ?? 0) + e.dur);
    stack.push(e);
  }
  return [...self].sort((a, b) => b[1] - a[1]);
}

// Self time per function of a CDP CPU profile.
function profileSelfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url ? f.url.split('/').pop() : ''}`.trim();
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [...self].sort((a, b) => b[1] - a[1]);
}

async function profiled(action) {
  if (!profileDir) return action();
  mkdirSync(profileDir, { recursive: true });
  const tracePath = join(profileDir, 'trace.json');
  await browser.startTracing(page, { path: tracePath, categories: ['devtools.timeline', 'v8', 'blink', 'toplevel', 'disabled-by-default-devtools.timeline'] });
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  await action();
  return async () => {
    const { profile } = await cdp.send('Profiler.stop');
    writeFileSync(join(profileDir, 'cpu.cpuprofile'), JSON.stringify(profile));
    await browser.stopTracing();
    const top = (rows, unit) => rows.slice(0, 25).map(([name, t]) => `    ${(t / unit).toFixed(1).padStart(8)} ms  ${name}`).join('\n');
    console.log(`  main thread by trace event (self time):\n${top(traceSelfTimes(JSON.parse(readFileSync(tracePath, 'utf8'))), 1000)}`);
    console.log(`  script by function (self time):\n${top(profileSelfTimes(profile), 1000)}`);
  };
}

async function measure(label, action, until, profile = false) {
  await reset();
  const before = await metrics();
  const started = performance.now();
  const report = profile ? await profiled(action) : await action();
  try {
    await page.waitForFunction(until.fn, until.arg, { timeout: 60_000, polling: 50 });
  } catch (error) {
    console.log(`${label}: did not finish; ${await held()} rows in the list, filter "${await page.getByLabel('Filter lines').inputValue()}"`);
    throw error;
  }
  const wall = performance.now() - started;
  const after = await metrics();
  const t = await tasks();
  const busy = (after.TaskDuration - before.TaskDuration) * 1000;
  const script = (after.ScriptDuration - before.ScriptDuration) * 1000;
  const layout = (after.LayoutDuration - before.LayoutDuration) * 1000 + (after.RecalcStyleDuration - before.RecalcStyleDuration) * 1000;
  console.log(`${label}: wall ${ms(wall)}, main thread busy ${ms(busy)} (script ${ms(script)}, style+layout ${ms(layout)}), longest task ${t.count ? ms(t.longest) : 'none over 50 ms'}, longest frame gap ${ms(t.gap)}`);
  if (typeof report === 'function') await report();
}

const start = await held();
console.log(`log viewer benchmark (Chromium ${browser.version()}), ${start} lines held before`);
await measure(
  `receive and render ${TARGET.toLocaleString('en')} lines at ${RATE.toLocaleString('en')} lines/s`,
  async () => { if ((await hostsim('POST', `/hostsim/log-rate?linesPerSecond=${RATE}`)) !== 204) throw new Error('log-rate refused'); },
  { fn: ([row, target]) => parseFloat(document.querySelector('.log-space').style.height) / row >= target, arg: [ROW_PX, TARGET] },
  true,
);
await hostsim('POST', '/hostsim/log-rate?linesPerSecond=0');
await page.getByRole('button', { name: 'Pause' }).click();
const skipped = await page.locator('text=/lines were skipped/').count();
console.log(`  lines held: ${(await held()).toLocaleString('en')} (buffer cap ${TARGET.toLocaleString('en')}); skipped-lines notice shown: ${skipped > 0}`);

await measure('filter 100,000 lines ("level=info")', () => page.getByLabel('Filter lines').fill('level=info'), {
  fn: ([row, target]) => parseFloat(document.querySelector('.log-space').style.height) / row < target, arg: [ROW_PX, TARGET],
});
await measure('clear the filter', () => page.getByLabel('Filter lines').fill(''), {
  fn: ([row, target]) => parseFloat(document.querySelector('.log-space').style.height) / row >= target, arg: [ROW_PX, TARGET],
});
await measure('jump to the first of 100,000 lines', () => page.evaluate(() => { document.querySelector('.log-lines').scrollTop = 0; }), {
  fn: () => { const r = document.querySelector('.log-lines .log-line'); const box = document.querySelector('.log-lines').getBoundingClientRect(); return r && Math.abs(r.getBoundingClientRect().top - box.top) < 40; }, arg: null,
});
await measure('toggle timestamps off', () => page.getByLabel('Timestamps').uncheck(), {
  fn: () => document.querySelectorAll('.log-lines .ts').length === 0, arg: null,
});

await browser.close();
server.kill();
