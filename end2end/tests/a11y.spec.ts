import AxeBuilder from '@axe-core/playwright';
import { expect, Page, test } from '@playwright/test';

import { allPages, createAdmin, createReadyCluster, createUser, settle, signIn } from './pages';

const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/**
 * Runs axe on every page; prints every violation (rule, impact, how many elements, where) and
 * returns the serious and critical ones.
 */
async function audit(page: Page, who: string, pages: [string, string][]): Promise<string[]> {
  const lines: string[] = [];
  const failures: string[] = [];
  for (const [name, path] of pages) {
    await page.goto(path);
    await settle(page);
    const { violations } = await new AxeBuilder({ page }).withTags(tags).analyze();
    for (const v of violations) {
      const where = v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(' | ');
      const line = `${who} ${name}: ${v.id} (${v.impact}) ×${v.nodes.length}: ${v.help} — ${where}`;
      lines.push(line);
      if (v.impact === 'serious' || v.impact === 'critical') failures.push(line);
    }
  }
  console.log(lines.length ? lines.join('\n') : `${who}: no violations`);
  return failures;
}

test('no serious or critical accessibility violation on any page, signed out, as a user and as an admin', async ({ browser, baseURL, page }) => {
  test.setTimeout(180_000);
  const failures = await audit(page, 'signed out', allPages());

  // An admin with a Ready cluster: its page shows everything (metrics, logs, kubeconfigs).
  const admin = createAdmin();
  await signIn(page, admin);
  const cluster = await createReadyCluster(page, 'axe');
  failures.push(...(await audit(page, 'admin', allPages(cluster))));

  // The compact menu, open, on a phone.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(cluster);
  await settle(page);
  await page.getByRole('banner').locator('summary').click({ timeout: 15_000 });
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  const { violations } = await new AxeBuilder({ page }).withTags(tags).analyze();
  for (const v of violations) {
    const line = `admin, 390px, menu open: ${v.id} (${v.impact}) ×${v.nodes.length}: ${v.help}`;
    console.log(line);
    if (v.impact === 'serious' || v.impact === 'critical') failures.push(line);
  }

  // A user who is not an admin: no clusters of their own, someone else's cluster is not found.
  const context = await browser.newContext({ baseURL });
  const userPage = await context.newPage();
  await signIn(userPage, createUser('axe'));
  failures.push(...(await audit(userPage, 'user', allPages(cluster))));
  await context.close();

  expect(failures).toEqual([]);
});
