import { expect, Page, test } from '@playwright/test';

import { allPages, createAdmin, createReadyCluster, createUser, settle, signIn } from './pages';

const widths = [360, 390, 430];

/** Visits every page at every phone width; returns the pages that scroll sideways. */
async function sideways(page: Page, who: string, pages: [string, string][]): Promise<string[]> {
  const figures: string[] = [];
  const overflowing: string[] = [];
  for (const width of widths) {
    await page.setViewportSize({ width, height: 800 });
    for (const [name, path] of pages) {
      await page.goto(path);
      await settle(page);
      const { scroll, inner } = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        inner: window.innerWidth,
      }));
      figures.push(`${who} ${width}px ${name}: scrollWidth ${scroll}, innerWidth ${inner}`);
      if (scroll > inner) overflowing.push(`${name} at ${width}px (${who}): ${scroll} > ${inner}`);
    }
  }
  console.log(figures.join('\n'));
  return overflowing;
}

test('no page scrolls sideways on a phone, signed out or signed in as an admin with a cluster', async ({ page }) => {
  test.setTimeout(180_000);
  const out = await sideways(page, 'signed out', allPages());

  await page.setViewportSize({ width: 1280, height: 720 });
  const admin = createAdmin();
  await signIn(page, admin);
  const cluster = await createReadyCluster(page, 'phone');
  const signedIn = await sideways(page, 'admin', allPages(cluster));

  expect([...out, ...signedIn]).toEqual([]);
});

/** The expanded state the browser gives assistive technology for the menu button. */
async function menuExpanded(page: Page): Promise<boolean | undefined> {
  const cdp = await page.context().newCDPSession(page);
  const { nodes } = await cdp.send('Accessibility.getFullAXTree');
  await cdp.detach();
  const button = nodes.find((n) => n.name?.value === 'Menu' && n.role?.value === 'DisclosureTriangle');
  return button?.properties?.find((p) => p.name === 'expanded')?.value.value as boolean | undefined;
}

test.describe('the compact menu on a phone', () => {
  test.use({ viewport: { width: 390, height: 800 } });

  test('opens, its links navigate, it closes after navigating and on Escape, and signs out', async ({ page }) => {
    const user = createUser('menu');
    await signIn(page, user);
    const header = page.getByRole('banner');
    const menu = header.locator('details.menu');
    const button = menu.locator('summary');
    const nav = page.getByRole('navigation', { name: 'Main' });

    await expect(button).toBeVisible();
    await expect(button).toHaveAttribute('aria-controls', 'site-menu');
    await expect(nav).toBeHidden();
    expect(await menuExpanded(page)).toBe(false);

    await button.click();
    await expect(nav).toBeVisible();
    expect(await menuExpanded(page)).toBe(true);
    await expect(header).toContainText(`Signed in as ${user.username}`);
    await nav.getByRole('link', { name: 'Clusters', exact: true }).click();
    await expect(page).toHaveURL(/\/clusters$/);
    await expect(page.getByRole('heading', { name: 'Clusters', exact: true })).toBeVisible();
    // Client-side navigation keeps the document: the menu closes by itself.
    await expect(menu).toHaveJSProperty('open', false);
    await expect(
      page.getByRole('navigation', { name: 'Main', includeHidden: true }).getByRole('link', { name: 'Clusters', exact: true, includeHidden: true }),
    ).toHaveAttribute('aria-current', 'page');

    await button.click();
    await expect(nav).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(nav).toBeHidden();
    await expect(button).toBeFocused();

    await button.click();
    await header.getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(/\/login$/);
    if (!(await menu.evaluate((d: HTMLDetailsElement) => d.open))) await button.click();
    await expect(header.getByRole('link', { name: 'Sign in' })).toBeVisible();
  });

  test.describe('without JavaScript', () => {
    test.use({ javaScriptEnabled: false });

    test('opens and its links and sign-out work', async ({ page }) => {
      await signIn(page, createUser('menunojs'));
      const header = page.getByRole('banner');
      const button = header.locator('details.menu summary');
      const nav = page.getByRole('navigation', { name: 'Main' });
      await expect(nav).toBeHidden();
      await button.click();
      await nav.getByRole('link', { name: 'Create cluster' }).click();
      await expect(page).toHaveURL(/\/clusters\/new$/);
      await expect(page.getByRole('heading', { name: 'Create a cluster' })).toBeVisible();
      await expect(nav).toBeHidden();
      await button.click();
      await expect(nav.getByRole('link', { name: 'Create cluster' })).toHaveAttribute('aria-current', 'page');
      await header.getByRole('button', { name: 'Sign out' }).click();
      await expect(page).toHaveURL(/\/login$/);
      await button.click();
      await expect(header.getByRole('link', { name: 'Sign in' })).toBeVisible();
    });
  });
});

test('wide screens show the navigation without a menu button', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 720 });
  await page.goto('/');
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  await expect(page.getByRole('banner').locator('summary')).toBeHidden();
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
});
