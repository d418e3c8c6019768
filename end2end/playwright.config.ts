import { defineConfig } from '@playwright/test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The release binary and site built by scripts/test.sh; override to test another build.
const root = resolve(__dirname, '..');
const kraftBin = process.env.KRAFT_BIN ?? join(root, 'target/release/kraft');
const siteRoot = process.env.KRAFT_SITE_ROOT ?? join(root, 'target/site');
const port = Number(process.env.KRAFT_E2E_PORT ?? 3917);
// A fresh zero-config data directory per run: the embedded SQLite default, nothing shared.
// This file is evaluated again in every worker: the first evaluation picks the directory and the
// workers inherit it through the environment (tests read the simulated host's kubeconfig there).
const dataDir = process.env.KRAFT_E2E_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'kraft-e2e-'));
process.env.KRAFT_E2E_DATA_DIR = dataDir;
// The real OpenID provider KRaft signs in through (oidc/provider.mjs), and KRaft's client secret
// there, in a file as operators give it.
const oidcPort = Number(process.env.KRAFT_E2E_OIDC_PORT ?? port + 1);
const oidcSecret = 'kraft-e2e-secret';
const oidcSecretFile = join(dataDir, 'oidc-client-secret');
writeFileSync(oidcSecretFile, oidcSecret + '\n', { mode: 0o600 });

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    trace: 'retain-on-failure',
    launchOptions: {
      // Debian's Chromium; Playwright's own browser downloads cannot work on these machines.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: [{
    command: 'node oidc/provider.mjs',
    url: `http://127.0.0.1:${oidcPort}/.well-known/openid-configuration`,
    reuseExistingServer: false,
    timeout: 30_000,
    stdout: 'ignore',
    stderr: 'ignore',
    env: {
      OIDC_PORT: String(oidcPort),
      OIDC_CLIENT_SECRET: oidcSecret,
      OIDC_REDIRECT_URI: `http://127.0.0.1:${port}/auth/oidc/callback`,
    },
  }, {
    command: `"${kraftBin}" serve`,
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      KRAFT_ADDR: `127.0.0.1:${port}`,
      KRAFT_DATA_DIR: dataDir,
      KRAFT_SITE_ROOT: siteRoot,
      KRAFT_METRICS_INTERVAL: '1s',
      // Every test signs up from 127.0.0.1; the per-address limit itself is tested in Rust.
      KRAFT_SIGNUP_LIMIT_PER_ADDRESS: '100',
      KRAFT_OIDC_ISSUER: `http://127.0.0.1:${oidcPort}`,
      KRAFT_OIDC_CLIENT_ID: 'kraft',
      KRAFT_OIDC_CLIENT_SECRET_FILE: oidcSecretFile,
      KRAFT_OIDC_DISPLAY_NAME: 'Test IdP',
      KRAFT_OIDC_SCOPES: 'email,profile,groups',
      KRAFT_OIDC_ADMIN_GROUP: 'kraft-admins',
      // The browser is on plain http here (the default public URL is KRaft's https side).
      KRAFT_OIDC_REDIRECT_URL: `http://127.0.0.1:${port}/auth/oidc/callback`,
      RUST_LOG: process.env.KRAFT_E2E_LOG ?? 'warn',
    },
  }],
});
