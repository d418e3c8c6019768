import { expect, Page } from '@playwright/test';

/** A fresh user per test: the server's database is shared by the whole run. */
export function newUser(tag: string) {
  const id = `${tag}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 30);
  return { username: id, email: `${id}@example.org`, password: 'correct horse battery staple' };
}

export async function fill(page: Page, fields: Record<string, string>) {
  for (const [label, value] of Object.entries(fields)) {
    await page.getByLabel(label, { exact: true }).fill(value);
  }
}

/** Signs up through the form and lands on the account page. */
export async function signUp(page: Page, user: ReturnType<typeof newUser>) {
  await page.goto('/register');
  await expect(page.getByRole('button', { name: 'Create account' })).toBeEnabled();
  await fill(page, {
    Email: user.email,
    Username: user.username,
    Password: user.password,
    'Repeat the password': user.password,
  });
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('heading', { name: 'Your account', exact: true })).toBeVisible();
}

/** Calls the simulated host's admin API (/hostsim/...), as its kubeconfig allows. */
export async function hostsim(method: string, path: string, body?: unknown): Promise<number> {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { request } = await import('node:https');
  const config = readFileSync(join(process.env.KRAFT_E2E_DATA_DIR ?? '', 'simulated-host.kubeconfig'), 'utf8');
  const field = (name: string) => new RegExp(`${name}: (\\S+)`).exec(config)![1];
  const url = new URL(path, field('server'));
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: Buffer.from(field('certificate-authority-data'), 'base64'),
        headers: {
          Authorization: `Bearer ${field('token')}`,
          ...(payload ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
