import { expect, Page, test } from '@playwright/test';

import { newUser, signUp } from './support';

// KRaft signs in through a real OpenID provider (oidc-provider, started by playwright.config.ts
// as "Test IdP"): its own login page, its consent page, its tokens and keys.

/** At the provider: signs in as `login` (any password) and consents, if it asks. */
async function atProvider(page: Page, login: string) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password will do');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  const consent = page.getByRole('button', { name: 'Continue' });
  await consent.click();
}

/** A provider login name that makes a valid KRaft username as it is. */
const loginName = (tag: string) => newUser(tag).username.slice(0, 20);

test('a new account through the OpenID provider, then the same account again', async ({ page, context }) => {
  const login = `admin-${loginName('sso')}`;
  await page.goto('/login?next=/clusters');
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await expect(page).toHaveURL(/127\.0\.0\.1:\d+\/interaction\//);
  await atProvider(page, login);
  // Back at KRaft, signed in, where the sign-in started.
  await expect(page).toHaveURL(/\/clusters$/);
  const header = page.getByRole('banner');
  await expect(header).toContainText(`Signed in as ${login}`);
  // The provider lists the user in kraft-admins: an admin (KRAFT_OIDC_ADMIN_GROUP).
  await page.goto('/admin/users');
  await expect(page.getByRole('heading', { name: 'Users and limits' })).toBeVisible();

  await header.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  // A fresh browser state: the provider asks again, and KRaft finds the same account.
  await context.clearCookies();
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await atProvider(page, login);
  await expect(page).toHaveURL(/\/account$/);
  await expect(header).toContainText(`Signed in as ${login}`);
  await expect(page.getByRole('list', { name: 'Recent activity' })).toContainText('Signed in');
});

test('an existing account is linked to the provider only with its password', async ({ page, context }) => {
  const user = newUser('lnk');
  user.email = `${user.username}@idp.example`;
  await signUp(page, user);
  await page.getByRole('banner').getByRole('button', { name: 'Sign out' }).click();
  await context.clearCookies();

  await page.goto('/login');
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await atProvider(page, user.username);
  await expect(page.getByRole('heading', { name: 'Link your account' })).toBeVisible();
  await expect(page.getByText(user.email, { exact: true })).toBeVisible();
  await page.getByLabel(`Password of ${user.email}`).fill('not the password');
  await page.getByRole('button', { name: 'Link and sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText("That is not this account's password.");
  await page.getByLabel(`Password of ${user.email}`).fill(user.password);
  await page.getByRole('button', { name: 'Link and sign in' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole('banner')).toContainText(`Signed in as ${user.username}`);
  await expect(page.getByRole('list', { name: 'Recent activity' })).toContainText('Single sign-on linked');
});

test('a forged state and a replayed code are refused by KRaft and the provider', async ({ page }) => {
  const login = loginName('rep');
  // A sign-in that worked, its callback noted on the way.
  const callbackSeen = page.waitForRequest((r) => new URL(r.url()).pathname === '/auth/oidc/callback');
  await page.goto('/login');
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await atProvider(page, login);
  const callback = new URL((await callbackSeen).url());
  await expect(page.getByRole('banner')).toContainText(`Signed in as ${login}`);
  await page.getByRole('banner').getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);

  // Replayed as it was: nothing is under way in this browser any more.
  const replayed = await page.goto(callback.toString());
  expect(replayed?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('No sign-in is under way');

  // A sign-in under way, answered with another state than the one it was sent with: refused.
  const started = await page.request.get('/auth/oidc/start', { maxRedirects: 0 });
  expect(started.status()).toBe(303);
  const forged = new URL(callback);
  forged.searchParams.set('state', 'forged-by-someone');
  const refused = await page.goto(forged.toString());
  expect(refused?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('state mismatch');

  // Another sign-in under way, given its own state but the old code: the provider will not
  // redeem a code twice (nor for another PKCE verifier).
  const again = await page.request.get('/auth/oidc/start', { maxRedirects: 0 });
  const state = new URL(again.headers()['location']).searchParams.get('state')!;
  const replay = new URL(callback);
  replay.searchParams.set('state', state);
  const answer = await page.goto(replay.toString());
  expect(answer?.status()).toBe(400);
  await expect(page.getByRole('alert')).toContainText('refused the sign-in');
  await expect(page.getByRole('alert')).toContainText('invalid_grant');
  await page.goto('/account');
  await expect(page).toHaveURL(/\/login/);
});
