import { expect, test, type Page } from '@playwright/test';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';

import { newUser, signUp } from './support';

// The real kubectl 1.37 against the zero-config KRaft, every call through KRaft's gateway with a
// kubeconfig downloaded the way a user downloads it.
const kubectl = process.env.KUBECTL ?? 'kubectl';

function run(kubeconfig: string, args: string[], input?: string): string {
  return execFileSync(kubectl, ['--kubeconfig', kubeconfig, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    input,
  });
}

/** Starts a long-running kubectl and resolves with its output once `until` matches it. */
function watchOutput(kubeconfig: string, args: string[], until: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, ['--kubeconfig', kubeconfig, ...args]);
    let out = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`kubectl ${args.join(' ')}: no ${until} in time; got:\n${out}`));
    }, timeoutMs);
    const take = (chunk: Buffer) => {
      out += chunk.toString();
      if (until.test(out)) {
        clearTimeout(timer);
        child.kill();
        resolve(out);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
  });
}

async function readyCluster(page: Page, name: string, version?: string): Promise<string> {
  const created = await page.request.post('/api/clusters/create', {
    form: version ? { name, version } : { name },
    headers: { Accept: 'application/json' },
  });
  expect(created.status()).toBe(200);
  const id: string = await created.json();
  await expect
    .poll(
      async () => {
        const r = await page.request.post('/api/clusters/get', { form: { id }, headers: { Accept: 'application/json' } });
        return (await r.json()).summary?.phase;
      },
      { timeout: 30_000 },
    )
    .toBe('Ready');
  return id;
}

test('kubectl works through the gateway: get, whoami, apply, watch, logs, exec, port-forward', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  const user = newUser('kc');
  await signUp(page, user);
  const id = await readyCluster(page, 'tools');
  const issued = await page.request.post(`/api/clusters/${id}/kubeconfig`, { form: { name: 'laptop', days: '1' } });
  expect(issued.status()).toBe(200);
  const kubeconfig = testInfo.outputPath('tools-kubeconfig.yaml');
  writeFileSync(kubeconfig, await issued.text(), { mode: 0o600 });

  expect(run(kubeconfig, ['get', 'nodes', '--no-headers']).trim().split('\n')).toHaveLength(5);

  // Who the cluster thinks we are: KRaft impersonates the user.
  expect(run(kubeconfig, ['auth', 'whoami'])).toContain(`kraft:${user.username}`);

  // A Deployment, watched until its pod runs.
  const manifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 8080}]
`;
  expect(run(kubeconfig, ['apply', '-f', '-'], manifest)).toContain('deployment.apps/web created');
  await watchOutput(kubeconfig, ['get', 'pods', '-l', 'app=web', '-w'], /web-\S+\s+1\/1\s+Running/);
  const pod = run(kubeconfig, ['get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}']).trim();

  // Logs, followed.
  await watchOutput(kubeconfig, ['logs', '-f', pod], /\S/);

  // exec, and exec with stdin (kubectl closes stdin at its end; cat then ends).
  expect(run(kubeconfig, ['exec', pod, '--', 'echo', 'hi'])).toBe('hi\n');
  expect(run(kubeconfig, ['exec', '-i', pod, '--', 'cat'], 'typed into the pod\n')).toBe('typed into the pod\n');

  // port-forward: bytes to the pod's port come back.
  const forward = spawn(kubectl, ['--kubeconfig', kubeconfig, 'port-forward', `pod/${pod}`, '18080:8080']);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('port-forward never listened')), 20_000);
      forward.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('Forwarding from')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = connect(18080, '127.0.0.1', () => socket.write('ping through the gateway\n'));
      let got = '';
      socket.on('data', (d) => {
        got += d.toString();
        if (got.includes('\n')) {
          socket.end();
          resolve(got);
        }
      });
      socket.on('error', reject);
      setTimeout(() => reject(new Error(`no echo; got ${got}`)), 10_000);
    });
    expect(echoed).toContain('ping through the gateway');
  } finally {
    forward.kill();
  }
});

// Upgrading a one-server cluster replaces its only server, and its API is down until the new one
// is ready. The gateway answers that with 503 and Retry-After, which kubectl (client-go) honours:
// a user's kubectl calls during the upgrade wait instead of failing.
test('kubectl keeps working while the page upgrades a one-server cluster', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await signUp(page, newUser('up'));
  const id = await readyCluster(page, 'solo', 'v1.35.2-k3s1');
  const issued = await page.request.post(`/api/clusters/${id}/kubeconfig`, { form: { name: 'laptop', days: '1' } });
  expect(issued.status()).toBe(200);
  const kubeconfig = testInfo.outputPath('solo-kubeconfig.yaml');
  writeFileSync(kubeconfig, await issued.text(), { mode: 0o600 });
  const serverVersion = () => JSON.parse(run(kubeconfig, ['version', '-o', 'json'])).serverVersion?.gitVersion;
  expect(serverVersion()).toBe('v1.35.2+k3s1');

  const calls: { ms: number; error?: string }[] = [];
  let upgraded = false;
  const traffic = (async () => {
    while (!upgraded) {
      const started = Date.now();
      try {
        await promisify(execFile)(kubectl, ['--kubeconfig', kubeconfig, 'get', 'namespaces', '-o', 'name'], { timeout: 90_000 });
        calls.push({ ms: Date.now() - started });
      } catch (e) {
        calls.push({ ms: Date.now() - started, error: String((e as { stderr?: string }).stderr ?? e) });
      }
    }
  })();

  await page.goto(`/clusters/${id}`);
  await expect(page.getByText('With one server, the cluster\'s API is down while its server is replaced')).toBeVisible();
  await page.locator('#field-change-version').selectOption('v1.36.2-k3s1');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByText('The change is on its way to the host.')).toBeVisible();
  await expect.poll(serverVersion, { timeout: 60_000, intervals: [500] }).toBe('v1.36.2+k3s1');
  upgraded = true;
  await traffic;
  const waited = calls.filter((c) => c.ms >= 5_000).length;
  testInfo.annotations.push({ type: 'kubectl calls', description: `${calls.length} during the upgrade, ${waited} waited for a Retry-After` });
  expect(calls.filter((c) => c.error)).toEqual([]);
  expect(calls.length).toBeGreaterThan(0);
});
