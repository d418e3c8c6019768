import { expect, test } from '@playwright/test';

import { newUser, signUp } from './support';

test('the dashboard guides a first cluster, then shows it live with charts and quota', async ({ page }) => {
  await signUp(page, newUser('db'));
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByRole('heading', { name: 'Dashboard', exact: true })).toBeVisible();
  // A first-time user is told what to do.
  await expect(page.getByRole('heading', { name: 'Create your first cluster' })).toBeVisible();
  await expect(page.locator('[data-total="clusters"]')).toHaveText(/^0 of \d+$/);
  await expect(page.locator('[data-total="cpu"]')).toHaveText('—');

  // Create one; the dashboard shows it, first as not ready, then with live numbers.
  await page.getByRole('link', { name: 'Create a cluster' }).first().click();
  const form = page.getByRole('form', { name: 'Create cluster' });
  await expect(form.getByRole('button', { name: 'Create cluster' })).toBeEnabled();
  await form.getByLabel('Name', { exact: true }).fill('dash');
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page).toHaveURL(/\/clusters\/[0-9a-f-]{36}$/);
  const detailUrl = page.url();

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  const card = page.getByRole('listitem', { name: 'dash' });
  await expect(card).toBeVisible();
  await expect(page.locator('[data-total="clusters"]')).toHaveText(/^1 of \d+$/);
  await expect(card.locator('.phase')).toHaveText('Ready', { timeout: 30_000 });
  await expect(card.locator('code')).toContainText('/k8s/clusters/');
  await expect(page.locator('.live-indicator')).toHaveText('Live');

  // Numbers, not placeholders, and they keep changing while we watch (no reload).
  const cpu = card.locator('[data-readout="cpu"]');
  await expect(cpu).toHaveText(/^\d+(m| cores)$|^\d+\.\d\d cores$/, { timeout: 20_000 });
  await expect(card.locator('[data-readout="memory"]')).toHaveText(/\d+\.\d (KiB|MiB|GiB)/);
  const line = card.getByRole('img', { name: 'CPU over time' }).locator('polyline');
  const first = await line.getAttribute('points');
  await expect.poll(() => line.getAttribute('points'), { timeout: 15_000 }).not.toBe(first);
  await expect(card.getByLabel('Quota of dash')).toContainText(/of 6\.25 cores/); // its own policy: 4 for the tenant + 1 server × 1 + 5 kubelets × 250m
  await expect(page.locator('[data-total="cpu"]')).toHaveText(/\d/);
  await expect(page.getByLabel('Quota of all your clusters')).toContainText('CPU requests');

  // The cluster page charts each pod; hovering shows the values at that moment.
  await card.getByRole('link', { name: 'dash' }).click();
  await expect(page).toHaveURL(detailUrl);
  const metrics = page.getByRole('region', { name: 'Metrics' });
  const chart = metrics.getByRole('img', { name: 'CPU', exact: true });
  // Shared mode on a 5-node host: the server and a k3k-kubelet per node.
  await expect(metrics.getByLabel('CPU by pod').locator('li[data-pod]')).toHaveCount(6, { timeout: 20_000 });
  await expect.poll(() => chart.locator('polyline.series').count(), { timeout: 20_000 }).toBe(6);
  // Wait for a few samples so the hover lands on an older one.
  await expect.poll(async () => ((await chart.locator('polyline.total').getAttribute('points')) ?? '').split(' ').length, {
    timeout: 20_000,
  }).toBeGreaterThan(2);
  await chart.scrollIntoViewIfNeeded();
  const box = (await chart.boundingBox())!;
  await chart.hover({ position: { x: 2, y: box.height / 2 } });
  await expect(chart.locator('line.marker')).toHaveCount(1);
  const server = metrics.getByLabel('CPU by pod').locator('li[data-pod$="server-0"] .value');
  await expect(server).toHaveText(/^\d+(m| cores)$|^\d+\.\d\d cores$/);
  await expect(metrics.locator('.readout').first()).toHaveText(/ at \d\d:\d\d:\d\d$/);
  await page.mouse.move(0, 0);
  await expect(chart.locator('line.marker')).toHaveCount(0);
});
