import { expect, test, type WebSocketRoute } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { hostsim, newUser, signUp } from './support';

const kubectl = process.env.KUBECTL ?? 'kubectl';
const hostKubeconfig = () => join(process.env.KRAFT_E2E_DATA_DIR ?? '', 'simulated-host.kubeconfig');

function run(args: string[]): string {
  return execFileSync(kubectl, args, { encoding: 'utf8', timeout: 30_000 });
}

test('create a cluster, watch it get ready, use a named kubeconfig through the gateway, revoke it, delete the cluster', async ({ page }, testInfo) => {
  const user = newUser('cl');
  await signUp(page, user);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Create cluster' }).click();
  const form = page.getByRole('form', { name: 'Create cluster' });
  await expect(form.getByRole('button', { name: 'Create cluster' })).toBeEnabled();
  // A bad name first: the message says why, nothing is created.
  await form.getByLabel('Name', { exact: true }).fill('Demo!');
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(form.getByText('Use only lowercase letters a-z, digits and hyphens.')).toBeVisible();

  await form.getByLabel('Name', { exact: true }).fill('demo');
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page).toHaveURL(/\/clusters\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop()!;
  await expect(page.getByRole('heading', { name: 'demo', exact: true })).toBeVisible();

  // It becomes Ready while we watch: no reload (a marker on window survives).
  await page.evaluate(() => ((window as unknown as { kraftMarker: string }).kraftMarker = 'kept'));
  await expect(page.locator('.page-head .phase')).toHaveText('Ready', { timeout: 30_000 });
  expect(await page.evaluate(() => (window as unknown as { kraftMarker?: string }).kraftMarker)).toBe('kept');
  await expect(page.getByLabel('Cluster details')).toContainText(`/k8s/clusters/${id}`);

  // Issue a named kubeconfig and use it with the real kubectl, through KRaft's gateway.
  const issue = page.getByRole('form', { name: 'New kubeconfig' });
  await issue.getByLabel('Name').fill('laptop');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    issue.getByRole('button', { name: 'Download kubeconfig' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe('demo-laptop-kubeconfig.yaml');
  const file = testInfo.outputPath('demo-kubeconfig.yaml');
  await download.saveAs(file);
  // Zero-config KRaft answers TLS on its own address; the kubeconfig carries its CA.
  expect(readFileSync(file, 'utf8')).toMatch(/server: https:\/\/127\.0\.0\.1:\d+\/k8s\/clusters\//);
  // Shared mode (the default): a k3k-kubelet per host node, each a node of the cluster.
  expect(run(['--kubeconfig', file, 'get', 'nodes', '--no-headers']).trim().split('\n')).toHaveLength(5);

  // The cluster's kubeconfigs list it, with when and where it was last used.
  const kubeconfigs = page.getByRole('table', { name: 'Kubeconfigs' });
  const laptop = kubeconfigs.getByRole('row', { name: /laptop/ });
  await expect(laptop).toBeVisible();
  // Use is written every 5 s: wait for it through the page's own server function, then reload
  // once. (A reload loop here once hit a hydration panic: the live socket spoke before the
  // streamed details were hydrated; the cluster page now looks at it only after hydration.)
  await expect
    .poll(
      async () => {
        const r = await page.request.post('/api/clusters/kubeconfigs', { form: { id }, headers: { Accept: 'application/json' } });
        return JSON.stringify(await r.json());
      },
      { timeout: 20_000 },
    )
    .toContain('127.0.0.1');
  await page.reload();
  await expect(laptop).toContainText(/ago from 127\.0\.0\.1/);

  // Revoke it: the token is refused.
  await laptop.getByRole('button', { name: 'Revoke laptop' }).click();
  await expect(laptop).toContainText('revoked');
  // Revocation reaches every replica within 5 s.
  await expect
    .poll(
      () => {
        try {
          run(['--kubeconfig', file, 'get', 'nodes']);
          return 'allowed';
        } catch (e) {
          return String((e as { stderr?: string }).stderr);
        }
      },
      { timeout: 10_000 },
    )
    .toMatch(/must be logged in|Unauthorized/);

  // The list shows it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Clusters' }).click();
  const row = page.getByRole('row', { name: /demo/ });
  await expect(row).toContainText('Ready');

  // Delete it: the name must be typed; then it is gone, here and on the host.
  await row.getByRole('link', { name: 'demo' }).click();
  const deleteForm = page.getByRole('form', { name: 'Delete cluster' });
  await deleteForm.getByLabel(/Type the cluster's name/).fill('demo');
  await deleteForm.getByRole('button', { name: 'Delete this cluster' }).click();
  await expect(page).toHaveURL(/\/clusters$/);
  await expect(page.getByRole('heading', { name: 'No clusters yet' })).toBeVisible({ timeout: 30_000 });
  await expect
    .poll(() => run(['--kubeconfig', hostKubeconfig(), 'get', 'namespaces', '-l', `kraft.dev/cluster-id=${id}`, '-o', 'name']), {
      timeout: 30_000,
    })
    .toBe('');
});

test("a stranger's cluster address shows not found", async ({ page, browser }) => {
  const owner = newUser('own');
  await signUp(page, owner);
  await page.goto('/clusters/new');
  const form = page.getByRole('form', { name: 'Create cluster' });
  await expect(form.getByRole('button', { name: 'Create cluster' })).toBeEnabled();
  await form.getByLabel('Name', { exact: true }).fill('private');
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page).toHaveURL(/\/clusters\/[0-9a-f-]{36}$/);
  const url = page.url();

  const context = await browser.newContext();
  const stranger = await context.newPage();
  await signUp(stranger, newUser('str'));
  const response = await stranger.goto(url);
  expect(response?.status()).toBe(404);
  await expect(stranger.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await context.close();
});

test('the cluster list arrives as HTML only, follows the live list and keeps keyboard focus on its row', async ({ page, baseURL }) => {
  await signUp(page, newUser('lst'));
  const create = async (name: string) => {
    const response = await page.request.post('/api/clusters/create', {
      form: { name },
      headers: { Origin: baseURL!, Accept: 'application/json' },
    });
    expect(response.status()).toBe(200);
  };
  await create('alpha');
  await create('beta');

  const response = await page.goto('/clusters');
  const html = await response!.text();
  // The rows are in the server's HTML, and not a second time as JSON for hydration: the page
  // carries only how many there are.
  expect(html).toContain('>alpha</a>');
  expect(html).toContain('>beta</a>');
  const ids = [...html.matchAll(/href="\/clusters\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
  expect(ids).toHaveLength(2);
  for (const id of ids) expect(html.split(id)).toHaveLength(2);
  await expect(page.locator('html[data-hydrated]')).toBeAttached();
  const table = page.getByRole('table', { name: 'Your clusters' });
  await expect(table.getByRole('row')).toHaveCount(3);

  // A keyboard user on a row's link stays there while the live list changes the rows.
  const alpha = table.getByRole('link', { name: 'alpha', exact: true });
  await alpha.focus();
  await alpha.evaluate((el) => ((el as unknown as { kraftOld: boolean }).kraftOld = true));
  await create('gamma');
  await expect(table.getByRole('link', { name: 'gamma', exact: true })).toBeVisible();
  await expect(table.getByRole('row', { name: /gamma/ })).toContainText('Ready', { timeout: 30_000 });
  await expect(table.getByRole('link', { name: 'alpha', exact: true })).toBeFocused();
  // It is a new link (the rows were replaced), given the focus back.
  expect(await page.evaluate(() => (document.activeElement as unknown as { kraftOld?: boolean }).kraftOld)).toBeUndefined();
  // The rows are links the router follows.
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'alpha', exact: true })).toBeVisible();
  await page.goBack();
  await expect(table.getByRole('row')).toHaveCount(4);
});

test('the logs of a ready cluster stream live and can be filtered, paused and downloaded', async ({ page }) => {
  // The log websockets pass through here, so that the test can cut the browser's own connection.
  const logSockets: { page: WebSocketRoute; server: WebSocketRoute }[] = [];
  await page.routeWebSocket(/\/ws\/clusters\/[^/]+\/logs/, (ws) => {
    logSockets.push({ page: ws, server: ws.connectToServer() });
  });
  await signUp(page, newUser('lg'));
  await page.goto('/clusters/new');
  const form = page.getByRole('form', { name: 'Create cluster' });
  await expect(form.getByRole('button', { name: 'Create cluster' })).toBeEnabled();
  await form.getByLabel('Name', { exact: true }).fill('logs');
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page.locator('.page-head .phase')).toHaveText('Ready', { timeout: 30_000 });

  // Metrics: live CPU and memory, and usage against the namespace quota.
  const metrics = page.getByRole('region', { name: 'Metrics' });
  await expect(metrics.getByRole('img', { name: 'CPU' })).toBeVisible();
  await expect(metrics.locator('.readout').first()).toHaveText(/\d+(m| cores) at \d\d:\d\d:\d\d/, { timeout: 20_000 });
  await expect(metrics.getByLabel('Quota usage')).toContainText(/of 6\.25 cores/); // its own policy: 4 for the tenant + 1 server × 1 + 5 kubelets × 250m

  const log = page.getByRole('log', { name: 'Log lines' });
  const lines = log.locator('.log-line');
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 15_000 });
  await expect(lines.first()).toBeVisible();
  // Lines keep arriving while we watch.
  const before = await lines.count();
  await expect.poll(() => lines.count(), { timeout: 15_000 }).toBeGreaterThan(before);

  // Timestamps off and on.
  await expect(log.locator('.ts').first()).toBeVisible();
  await page.getByLabel('Timestamps').uncheck();
  await expect(log.locator('.ts')).toHaveCount(0);
  await page.getByLabel('Timestamps').check();

  // Filter, in any case: only matching lines, with the match highlighted as the line writes it.
  await page.getByLabel('Filter lines').fill('Level=INFO');
  await expect(log.locator('mark').first()).toHaveText('level=info');
  for (const text of await lines.allTextContents()) expect(text.toLowerCase()).toContain('level=info');
  await page.getByLabel('Filter lines').fill('');

  // Pause holds new lines back and says how many wait; resume shows them.
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByText(/Paused: \d+ new lines waiting/)).toBeVisible({ timeout: 15_000 });
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByText(/Paused: \d+ new lines waiting/)).toHaveCount(0);

  // Download the log as a file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
  expect(download.suggestedFilename()).toMatch(/^k3k-logs-server-0-k3k-logs-server\.log$/);

  // JSON lines pretty-print on demand.
  await page.getByLabel('Filter lines').fill('"level"');
  await log.getByRole('button', { name: 'Pretty-print JSON' }).first().click();
  await expect(page.getByLabel('Pretty-printed JSON')).toContainText('"level": "info"');
  await page.getByRole('button', { name: 'Close' }).click();
  await expect(page.getByLabel('Pretty-printed JSON')).toHaveCount(0);
  await page.getByLabel('Filter lines').fill('');

  // The host's log stream breaks and stays down for a while: the viewer says so, then carries
  // on by itself with no gap and no duplicate.
  const id = page.url().split('/').pop()!;
  const namespace = run(['--kubeconfig', hostKubeconfig(), 'get', 'namespaces', '-l', `kraft.dev/cluster-id=${id}`, '-o', 'jsonpath={.items[0].metadata.name}']);
  const pod = 'k3k-logs-server-0';
  const logPath = `/api/v1/namespaces/${namespace}/pods/${pod}/log`;
  expect(await hostsim('PUT', '/hostsim/faults', { errors: [{ pathPrefix: logPath, rate: 1, code: 503 }] })).toBe(200);
  expect(await hostsim('POST', '/hostsim/drop-connections')).toBe(204);
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('○ reconnecting…');
  expect(await hostsim('DELETE', '/hostsim/faults')).toBe(204);
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 30_000 });
  const afterOutage = await lines.count();
  await expect.poll(() => lines.count(), { timeout: 15_000 }).toBeGreaterThan(afterOutage);

  // The browser's own connection drops while paused: it comes back by itself, and the lines held
  // back are neither fetched again nor lost.
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByText(/Paused: \d+ new lines waiting/)).toBeVisible({ timeout: 15_000 });
  const opened = logSockets.length;
  const cut = logSockets[opened - 1];
  await cut.page.close();
  await cut.server.close();
  await expect.poll(() => logSockets.length, { timeout: 15_000 }).toBeGreaterThan(opened);
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 15_000 });
  await page.waitForTimeout(1_000);
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.waitForTimeout(1_500);

  // What the viewer holds equals the host's own log over the same span.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByRole('button', { name: 'Copy' }).click();
  const copied = (await page.evaluate(() => navigator.clipboard.readText())).split('\n').filter(Boolean);
  await page.getByRole('button', { name: 'Resume' }).click();
  const host = run(['--kubeconfig', hostKubeconfig(), '-n', namespace, 'logs', pod, '-c', 'k3k-logs-server', '--timestamps'])
    .split('\n')
    .filter(Boolean);
  const ts = (line: string) => line.slice(0, line.indexOf(' '));
  const from = ts(copied[0]) > ts(host[0]) ? ts(copied[0]) : ts(host[0]);
  const to = ts(copied[copied.length - 1]);
  const span = (all: string[]) => all.filter((l) => ts(l) >= from && ts(l) <= to);
  expect(span(copied).length).toBeGreaterThan(5);
  expect(span(copied)).toEqual(span(host));

  // A container that restarted: its previous run can be read.
  expect(await hostsim('POST', `/hostsim/restart-container?namespace=${namespace}&pod=${pod}&container=k3k-logs-server`)).toBe(204);
  // The page comes with its details: the browser does not fetch them again when the live list
  // agrees with it (it did, and re-made the log and metrics sockets on every visit).
  let detailFetches = 0;
  page.on('request', (request) => {
    if (request.url().includes('/api/clusters/get')) detailFetches += 1;
  });
  await page.reload();
  // The box is in the server's HTML before the viewer is live: a tick before hydration changes the
  // box but not the viewer (CI once ticked it first and waited for a run that never came). The
  // viewer following the current run says it is live.
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 20_000 });
  await page.waitForTimeout(1_000);
  expect(detailFetches).toBe(0);
  await page.getByLabel(/Previous run \(1 restart\)/).check();
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('■ previous run (ended)');
  await page.getByLabel('Filter lines').fill('context deadline exceeded');
  await expect(log.locator('.log-line.level-fatal')).toHaveCount(1);
  await page.getByLabel(/Previous run/).uncheck();
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 15_000 });

  // The host cannot list the cluster's pods for a while: the viewer says so, and follows the log
  // by itself once it can (it once showed "no pod yet" and waited for ever).
  const podsPath = `/api/v1/namespaces/${namespace}/pods`;
  expect(await hostsim('PUT', '/hostsim/faults', { errors: [{ pathPrefix: podsPath, rate: 1, code: 503 }] })).toBe(200);
  await page.reload();
  await expect(page.getByText(/The cluster's pods cannot be listed/)).toBeVisible();
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('○ connecting…');
  expect(await hostsim('DELETE', '/hostsim/faults')).toBe(204);
  await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('● live', { timeout: 15_000 });
  await expect(page.getByText(/The cluster's pods cannot be listed/)).toHaveCount(0);
});
