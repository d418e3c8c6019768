import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

import { expect, Page } from '@playwright/test';

import { fill, newUser } from './support';

/** The binary the run serves (as playwright.config.ts picks it); its CLI makes accounts. */
const kraftBin = process.env.KRAFT_BIN ?? resolve(__dirname, '../../target/release/kraft');

export type User = ReturnType<typeof newUser>;

/**
 * An account made with `kraft admin create-user` on the run's database. Not through the form:
 * sign-ups are limited per address (10 an hour) and the other specs use those, and which account
 * signed up first in a run (the admin) depends on which specs run.
 */
export function createUser(tag: string, { admin = false } = {}): User {
  const user = newUser(tag);
  const args = ['admin', 'create-user', '--email', user.email, '--username', user.username];
  execFileSync(kraftBin, admin ? [...args, '--admin'] : args, {
    input: `${user.password}\n`,
    env: { ...process.env, KRAFT_DATA_DIR: process.env.KRAFT_E2E_DATA_DIR ?? '', RUST_LOG: 'warn' },
    stdio: ['pipe', 'ignore', 'inherit'],
    timeout: 30_000,
  });
  return user;
}

export const createAdmin = () => createUser('adm', { admin: true });

/** Signs in through the form (works with and without JavaScript). */
export async function signIn(page: Page, user: User) {
  await page.goto('/login');
  await fill(page, { 'Email or username': user.username, Password: user.password });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).not.toHaveURL(/\/login$/);
  await expect(page.getByRole('banner')).toContainText(`Signed in as ${user.username}`);
}

/** Creates a cluster through the form and waits until it is Ready; returns its page's path. */
export async function createReadyCluster(page: Page, name: string): Promise<string> {
  await page.goto('/clusters/new');
  const form = page.getByRole('form', { name: 'Create cluster' });
  await expect(form.getByRole('button', { name: 'Create cluster' })).toBeEnabled();
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page).toHaveURL(/\/clusters\/[0-9a-f-]{36}$/);
  const path = new URL(page.url()).pathname;
  await expect(page.locator('.page-head .phase')).toHaveText('Ready', { timeout: 30_000 });
  return path;
}

/** Every page of the application, by name; `cluster` is a cluster's own page when one exists. */
export function allPages(cluster?: string): [string, string][] {
  return [
    ['home', '/'],
    ['register', '/register'],
    ['login', '/login'],
    ['account', '/account'],
    ['clusters', '/clusters'],
    ['new cluster', '/clusters/new'],
    ...(cluster ? [['cluster', cluster] as [string, string]] : []),
    ['admin users', '/admin/users'],
    ['admin clusters', '/admin/clusters'],
    ['workshops', '/workshops'],
    ['join a workshop', '/join'],
    ['not found', '/no/such/page'],
  ];
}

/** Waits until the page has hydrated and settled, so what is measured is what a user sees. */
export async function settle(page: Page) {
  await page.waitForLoadState('load');
  await expect(page.locator('main')).toBeVisible();
  // Pages show "Loading…" only until their data is there; signed-out visits may redirect.
  await expect(page.locator('main')).not.toContainText(/^Loading/);
  // A Ready cluster's log viewer appears once its pods are listed: wait, so it is measured too.
  if (await page.locator('section.logs').count()) {
    await expect(page.getByRole('toolbar', { name: 'Log controls' })).toBeVisible({ timeout: 20_000 });
  }
}
