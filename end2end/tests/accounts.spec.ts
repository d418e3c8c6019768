import { expect, Page, test } from '@playwright/test';

import { fill, newUser } from './support';

async function lifecycle(page: Page, javascript: boolean) {
  const user = newUser(javascript ? 'js' : 'nojs');
  const newPassword = 'another long passphrase';
  const header = page.getByRole('banner');

  // Register, with one mistake first: the error is shown and nothing typed is lost.
  await page.goto('/register');
  if (javascript) await expect(page.getByRole('button', { name: 'Create account' })).toBeEnabled();
  await fill(page, {
    Email: user.email,
    Username: user.username,
    Password: user.password,
    'Repeat the password': 'not the same password',
  });
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('The two passwords do not match.')).toBeVisible();
  await expect(page.getByLabel('Email', { exact: true })).toHaveValue(user.email);
  await expect(page.getByLabel('Username', { exact: true })).toHaveValue(user.username);

  await fill(page, { Password: user.password, 'Repeat the password': user.password });
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole('heading', { name: 'Your account', exact: true })).toBeVisible();
  await expect(page.getByLabel('Account details')).toContainText(user.email);
  await expect(header).toContainText(`Signed in as ${user.username}`);

  // Sign out, then back in.
  await header.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(header.getByRole('link', { name: 'Sign in' })).toBeVisible();
  await fill(page, { 'Email or username': user.username, Password: user.password });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Your account', exact: true })).toBeVisible();

  // Change the password; the account page says so.
  const passwordForm = page.getByRole('form', { name: 'Change password' });
  await passwordForm.getByLabel('Current password').fill(user.password);
  await passwordForm.getByLabel('New password', { exact: true }).fill(newPassword);
  await passwordForm.getByLabel('Repeat the new password').fill(newPassword);
  await passwordForm.getByRole('button', { name: 'Change password' }).click();
  await expect(passwordForm.getByRole('status')).toBeVisible();
  await expect(page.getByRole('list', { name: 'Recent activity' })).toContainText('Password changed');

  // The old password no longer works; the new one does.
  await header.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await fill(page, { 'Email or username': user.email, Password: user.password });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('The email/username or password is not correct.');
  await expect(page.getByLabel('Email or username')).toHaveValue(user.email);
  await fill(page, { Password: newPassword });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Your account', exact: true })).toBeVisible();

  // Delete the account: the warning is explicit, the username must be typed.
  const deleteForm = page.getByRole('form', { name: 'Delete account' });
  await expect(page.getByText('every cluster you own')).toBeVisible();
  await deleteForm.getByLabel('Your password').fill(newPassword);
  await deleteForm.getByLabel(/Type your username/).fill(user.username);
  await deleteForm.getByRole('button', { name: 'Delete my account and all my clusters' }).click();
  await expect(page.getByRole('heading', { name: 'Your account was deleted' })).toBeVisible();

  // It is gone.
  await page.goto('/login');
  await fill(page, { 'Email or username': user.username, Password: newPassword });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('The email/username or password is not correct.');
}

test.describe('accounts with JavaScript', () => {
  test('register, sign out, sign in, change password, delete', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await lifecycle(page, true);
    expect(errors).toEqual([]);
  });
});

test.describe('accounts without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('register, sign out, sign in, change password, delete', async ({ page }) => {
    await lifecycle(page, false);
  });
});
