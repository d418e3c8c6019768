import { expect, test, type Browser, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createUser } from './pages';
import { fill, newUser, signUp } from './support';

// A workshop as a room runs it: an organizer with a warm pool of 3, three attendees in three
// browsers (by link with a new account, by typed code with a new account, and an existing
// account by link), each on a Ready cluster at once with a kubeconfig kubectl takes; the board
// shows them; a seat is reset; "end now" removes every workshop cluster from the host.
const kubectl = process.env.KUBECTL ?? 'kubectl';
const dataDir = process.env.KRAFT_E2E_DATA_DIR ?? '';
const hostKubeconfig = join(dataDir, 'simulated-host.kubeconfig');

function kubectlRun(kubeconfig: string, args: string[]): string {
  return execFileSync(kubectl, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000 });
}

/** `YYYY-MM-DDTHH:MM` in the browser's time zone, as a datetime-local field takes it. */
async function localTime(page: Page, minutesFromNow: number): Promise<string> {
  return page.evaluate((m) => {
    const d = new Date(Date.now() + m * 60_000);
    const pad = (n: number) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }, minutesFromNow);
}

/** The attendee is on their cluster's page, and it is Ready at once (it came from the pool). */
async function onReadyCluster(page: Page): Promise<string> {
  await expect(page).toHaveURL(/\/clusters\/[0-9a-f-]{36}$/, { timeout: 20_000 });
  const id = page.url().split('/').pop()!;
  await expect(page.locator('.phase.ready').first()).toBeVisible({ timeout: 5_000 });
  return id;
}

async function kubeconfigWorks(page: Page, id: string, path: string) {
  await expect(page.getByRole('heading', { name: 'Kubeconfigs' })).toBeVisible();
  const issued = await page.request.post(`/api/clusters/${id}/kubeconfig`, { form: { name: 'laptop', days: '1' } });
  expect(issued.status()).toBe(200);
  writeFileSync(path, await issued.text(), { mode: 0o600 });
  expect(kubectlRun(path, ['get', 'nodes', '--no-headers']).trim().length).toBeGreaterThan(0);
}

async function attendeePage(browser: Browser): Promise<Page> {
  const context = await browser.newContext();
  return context.newPage();
}

test('an organizer runs a workshop: pool, join by link and code, board, reset, end', async ({ page, browser }, testInfo) => {
  test.setTimeout(180_000);
  // The zero-config server's first account may be anyone's: the organizer is an admin made with
  // the operator's command line.
  const organizer = createUser('org', { admin: true });
  await page.goto('/login?next=/workshops');
  await fill(page, { 'Email or username': organizer.username, Password: organizer.password });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Workshops', exact: true })).toBeVisible();

  await fill(page, { Title: 'Kubernetes in Port Louis', Seats: '5', 'Warm pool': '3' });
  await page.getByLabel('Starts', { exact: true }).fill(await localTime(page, -5));
  await page.getByLabel('Ends', { exact: true }).fill(await localTime(page, 120));
  await page.getByRole('button', { name: 'Create workshop' }).click();
  await expect(page).toHaveURL(/\/workshops\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { name: 'Kubernetes in Port Louis' })).toBeVisible();
  // The board refreshes itself until the pool is full.
  await expect(page.locator('[data-pool-ready]')).toHaveAttribute('data-pool-ready', '3', { timeout: 60_000 });
  const code = (await page.locator('[data-workshop-code]').textContent())!.trim();
  const link = (await page.locator('[data-workshop-link]').getAttribute('href'))!;
  expect(code).toMatch(/^[2-9A-Z]{4}-[2-9A-Z]{4}$/);

  // 1: by link, with a new account.
  const ada = await attendeePage(browser);
  const adaUser = newUser('ada');
  await ada.goto(link);
  await expect(ada.getByRole('heading', { name: 'Kubernetes in Port Louis' })).toBeVisible();
  await fill(ada, { Email: adaUser.email, Username: adaUser.username, Password: adaUser.password, 'Repeat the password': adaUser.password });
  await ada.getByRole('button', { name: 'Create account and join' }).click();
  const adaCluster = await onReadyCluster(ada);
  await kubeconfigWorks(ada, adaCluster, testInfo.outputPath('ada.kubeconfig'));

  // 2: by typed code, with a new account.
  const bob = await attendeePage(browser);
  const bobUser = newUser('bob');
  await bob.goto('/join');
  await bob.getByLabel('Workshop code').fill(code.toLowerCase());
  await bob.getByRole('button', { name: 'Continue' }).click();
  await expect(bob.getByRole('heading', { name: 'Kubernetes in Port Louis' })).toBeVisible();
  await fill(bob, { Email: bobUser.email, Username: bobUser.username, Password: bobUser.password, 'Repeat the password': bobUser.password });
  await bob.getByRole('button', { name: 'Create account and join' }).click();
  const bobCluster = await onReadyCluster(bob);
  await kubeconfigWorks(bob, bobCluster, testInfo.outputPath('bob.kubeconfig'));

  // 3: an existing account, by link. Signed up through the form (the run's sign-ups stay within
  // the per-address limit: the two above came through the workshop link, which does not count).
  // Not `kraft admin create-user`: while this workshop's clusters start, that second process
  // waited 30 s for the zero-config SQLite database once.
  const cy = await attendeePage(browser);
  const cyUser = newUser('cy');
  await signUp(cy, cyUser);
  await cy.goto(link);
  await cy.getByRole('button', { name: 'Join and get my cluster' }).click();
  const cyCluster = await onReadyCluster(cy);
  await kubeconfigWorks(cy, cyCluster, testInfo.outputPath('cy.kubeconfig'));

  // The board shows all three, live.
  for (const user of [adaUser, bobUser, cyUser]) {
    await expect(page.locator(`tr[data-attendee="${user.username}"]`)).toBeVisible({ timeout: 15_000 });
  }
  await expect(page.locator('[data-seats-taken]')).toHaveText('3 of 5 taken');

  // Reset ada's seat: she gets another cluster.
  await page.getByRole('button', { name: `Reset ${adaUser.username}'s cluster` }).click();
  await expect
    .poll(
      async () => {
        const r = await ada.request.post('/api/clusters/list', { headers: { Accept: 'application/json' } });
        const list: { id: string }[] = await r.json();
        return list.some((c) => c.id !== adaCluster);
      },
      { timeout: 30_000 },
    )
    .toBe(true);

  // End now: every workshop cluster leaves the host.
  await page.getByText('End now', { exact: true }).click();
  await page.getByRole('button', { name: 'End the workshop and delete its clusters' }).click();
  await expect(page.locator('[data-workshop-phase]')).toHaveAttribute('data-workshop-phase', 'Ended', { timeout: 15_000 });
  await expect
    .poll(
      () => {
        const names = kubectlRun(hostKubeconfig, ['get', 'namespaces', '-o', 'jsonpath={.items[*].metadata.labels.kraft\\.dev/cluster-id}']);
        return [adaCluster, bobCluster, cyCluster].filter((id) => names.includes(id)).length;
      },
      { timeout: 60_000, intervals: [1000] },
    )
    .toBe(0);
});
