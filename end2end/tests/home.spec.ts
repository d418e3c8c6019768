import { expect, test } from '@playwright/test';

test.describe('the KRaft shell', () => {
  test('hydrates, and the button asks the server for its details', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });

    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'Your own Kubernetes cluster, in seconds' })).toBeVisible();

    // The button is disabled in the server-rendered HTML and enabled by hydration;
    // Playwright's click waits until it is enabled.
    const button = page.getByRole('button', { name: 'Show server details' });
    await expect(button).toBeEnabled();
    await button.click();

    const details = page.getByRole('definition');
    await expect(page.getByLabel('Server details')).toBeVisible();
    await expect(details.nth(1)).toHaveText('SQLite');
    await expect(details.nth(0)).toHaveText(/^\d+\.\d+\.\d+/);
    expect(errors).toEqual([]);
  });

  test('navigates between pages without reloading the document', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByRole('button', { name: 'Show server details' })).toBeEnabled();
    // A marker on window survives client-side routing and is lost on a full reload.
    await page.evaluate(() => ((window as unknown as { kraftMarker: string }).kraftMarker = 'kept'));

    const header = page.getByRole('banner');
    await header.getByRole('link', { name: 'Create account' }).click();
    await expect(page.getByRole('heading', { name: 'Create your account' })).toBeVisible();
    await expect(page).toHaveURL(/\/register$/);
    await header.getByRole('link', { name: 'Sign in' }).click();
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await expect(page).toHaveURL(/\/login$/);

    expect(await page.evaluate(() => (window as unknown as { kraftMarker?: string }).kraftMarker)).toBe('kept');
  });

  test('shows the version in the footer and a not-found page for unknown addresses', async ({ page }) => {
    const response = await page.goto('/no/such/page');
    expect(response?.status()).toBe(404);
    await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
    await expect(page.getByRole('contentinfo')).toContainText(/KRaft \d+\.\d+\.\d+/);
  });
});
