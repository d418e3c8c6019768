import { expect, test } from '@playwright/test';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { newUser, signUp } from './support';

const kraftBin = process.env.KRAFT_BIN ?? resolve(__dirname, '../../target/release/kraft');

test('an API token is created on the account page, shown once, works and is revoked', async ({ page, baseURL }) => {
  await signUp(page, newUser('tok'));
  await expect(page.getByRole('heading', { name: 'API tokens', exact: true })).toBeVisible();
  await expect(page.getByText('No tokens yet.')).toBeVisible();
  await page.getByLabel('Token name', { exact: true }).fill('laptop');
  await page.getByRole('checkbox', { name: /clusters: create/ }).check();
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByRole('heading', { name: 'New API token' })).toBeVisible();
  const shown = page.locator('[data-api-token]');
  await expect(shown).toHaveText(/^kraftpat_/);
  const token = (await shown.textContent())!;

  const me = await page.request.get(`${baseURL}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).scopes).toEqual(['read', 'clusters']);

  // Listed on the account page without the secret.
  await page.getByRole('link', { name: 'Back to your account' }).click();
  const row = page.locator('tr[data-token="laptop"]');
  await expect(row).toContainText('read, clusters');
  expect(await page.content()).not.toContain(token.slice(15));
  await page.getByRole('button', { name: 'Revoke laptop' }).click();
  await expect(page.getByText('Revoked: the token no longer works.')).toBeVisible();
  const after = await page.request.get(`${baseURL}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
  expect(after.status()).toBe(401);
});

test('kraft login opens KRaft in the browser and receives a token on the loopback', async ({ page, baseURL }) => {
  const user = newUser('cli');
  await signUp(page, user);
  const home = mkdtempSync(join(tmpdir(), 'kraft-cli-'));
  const config = join(home, 'cli.json');
  const cli = spawn(kraftBin, ['login', baseURL!, '--no-browser'], {
    env: { ...process.env, HOME: home, KRAFT_CONFIG: config },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let said = '';
  const exited = new Promise<number>((done) => cli.on('exit', (code) => done(code ?? -1)));
  const address = await new Promise<string>((found, fail) => {
    const timer = setTimeout(() => fail(new Error(`no address from kraft login:\n${said}`)), 20_000);
    cli.stderr.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      const match = /(http\S+\/account\/tokens\/cli\S+)/.exec(said);
      if (match) {
        clearTimeout(timer);
        found(match[1]);
      }
    });
  });
  await page.goto(address);
  await expect(page.getByRole('heading', { name: 'Authorize the kraft command line' })).toBeVisible();
  await expect(page.getByText(user.username, { exact: true })).toBeVisible();
  await page.getByRole('button', { name: 'Authorize' }).click();
  await expect(page.getByText('The kraft CLI is logged in.')).toBeVisible();
  expect(await exited).toBe(0);
  expect(said).toContain(`as ${user.username}`);
  const saved = JSON.parse(readFileSync(config, 'utf8'));
  expect(saved.token).toMatch(/^kraftpat_/);
  const me = await page.request.get(`${baseURL}/api/v1/me`, { headers: { Authorization: `Bearer ${saved.token}` } });
  expect((await me.json()).username).toBe(user.username);
  // It shows on the account page, where it can be revoked.
  await page.goto('/account');
  await expect(page.locator('tr[data-token^="kraft CLI on"]')).toHaveCount(1);
});
