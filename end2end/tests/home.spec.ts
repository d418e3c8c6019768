import { expect, test } from '@playwright/test';

test.describe('the KRaft shell', () => {
  test('hydrates, and says what a learner and a workshop organizer get', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });

    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'Your own Kubernetes cluster, in seconds' })).toBeVisible();
    await expect(page.getByRole('region', { name: 'Learning Kubernetes' })).toContainText('kubeconfig');
    await expect(page.getByRole('region', { name: 'Running a workshop' })).toContainText('join link');
    // The app marks the document once it has hydrated (app/src/shell.rs).
    await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
    expect(errors).toEqual([]);
  });

  test('navigates between pages without reloading the document', async ({ page }) => {
    await page.goto('/');
    await expect(page.locator('html')).toHaveAttribute('data-hydrated', '');
    // A marker on window survives client-side routing and is lost on a full reload.
    await page.evaluate(() => ((window as unknown as { kraftMarker: string }).kraftMarker = 'kept'));
    // Zero-config runs a simulated host, and the header says so. The header asks who is looking
    // again after every navigation; the note must stay on screen meanwhile, not blink out.
    await expect(page.getByRole('banner').getByRole('note')).toContainText('Simulated host.');
    await page.evaluate(() => {
      const w = window as unknown as { noteGone: boolean };
      w.noteGone = false;
      new MutationObserver(() => {
        if (!document.querySelector('header p.banner')) w.noteGone = true;
      }).observe(document.body, { childList: true, subtree: true });
    });

    const header = page.getByRole('banner');
    await header.getByRole('link', { name: 'Create account' }).click();
    await expect(page.getByRole('heading', { name: 'Create your account' })).toBeVisible();
    await expect(page).toHaveURL(/\/register$/);
    await header.getByRole('link', { name: 'Sign in' }).click();
    await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await expect(page).toHaveURL(/\/login$/);

    expect(await page.evaluate(() => (window as unknown as { kraftMarker?: string }).kraftMarker)).toBe('kept');
    expect(await page.evaluate(() => (window as unknown as { noteGone: boolean }).noteGone)).toBe(false);
    await expect(header.getByRole('note')).toContainText('Simulated host.');
  });

  test('shows the version in the footer and a not-found page for unknown addresses', async ({ page }) => {
    const response = await page.goto('/no/such/page');
    expect(response?.status()).toBe(404);
    await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
    await expect(page.getByRole('contentinfo')).toContainText(/KRaft \d+\.\d+\.\d+/);
  });
});
