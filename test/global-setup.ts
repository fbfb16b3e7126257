// vitest globalSetup: starts the test services (scripts/test-services.sh up) and provides their
// description to every test as `inject('services')` (see test/services.ts).
//
//   PREBUILT_TEST_SERVICES=off   do not run the script; use the services.json of an earlier `up`
//                                if there is one, else provide "everything missing" (tests skip; in CI they fail)
//   PREBUILT_TEST_SERVICES_DIR   the script's state directory (default /var/tmp/prebuilt-test-services)
//
// When the services.json of an earlier `up` describes services that all still answer (a quick
// probe of each, well under a second), the script is not run again.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type { TestServices } from './services.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'test-services.sh');
const STATE_DIR = process.env['PREBUILT_TEST_SERVICES_DIR'] ?? '/var/tmp/prebuilt-test-services';
const SERVICES_JSON = join(STATE_DIR, 'services.json');

const NO_SERVICES: TestServices = { dockerHost: null, registries: null, baseImage: null, modernDocker: null, containerdStoreDocker: null, buildx: null, erofsContainerd: null, missing: [] };

function isTestServices(value: unknown): value is TestServices {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return 'dockerHost' in v && 'registries' in v && 'baseImage' in v && Array.isArray(v['missing']);
}

/** Lines of the script's log worth showing: what it starts or builds, and what is missing. */
function worthShowing(line: string): boolean {
  return line.trim() !== '' && !/ reusing |^\[test-services\] up in /.test(line);
}

function runUp(): Promise<TestServices> {
  return new Promise((resolve) => {
    // stdout (the JSON without passwords) is not needed: the file has everything.
    const child = spawn('bash', [SCRIPT, 'up'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let pending = '';
    const shown: string[] = [];
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (worthShowing(line)) {
          shown.push(line);
          process.stderr.write(`${line}\n`);
        }
      }
    });
    const fail = (why: string): void =>
      resolve({ ...NO_SERVICES, missing: [`scripts/test-services.sh up failed: ${why}; run it by hand to see why`] });
    child.on('error', (error) => fail(error.message));
    child.on('close', (code) => {
      if (pending && worthShowing(pending)) process.stderr.write(`${pending}\n`);
      if (code !== 0) return fail(`exit code ${code}`);
      readFile(SERVICES_JSON, 'utf8').then(
        (text) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return fail(`${SERVICES_JSON} is not JSON`);
          }
          if (!isTestServices(parsed)) return fail(`${SERVICES_JSON} has an unexpected shape`);
          resolve(parsed);
        },
        (error: Error) => fail(`cannot read ${SERVICES_JSON}: ${error.message}`),
      );
    });
  });
}

/** GET /_ping on a unix-socket Docker daemon: true when it answers OK. */
function dockerPing(dockerHost: string): Promise<boolean> {
  if (!dockerHost.startsWith('unix://')) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request({ socketPath: dockerHost.slice('unix://'.length), path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** containerd 2.1's root and mkfs.erofs are still there (no daemon to probe: tests start their own). */
async function provided(erofs: TestServices['erofsContainerd']): Promise<boolean> {
  if (!erofs) return false;
  const files = [join(erofs.root, 'usr', 'bin', 'containerd'), erofs.mkfsErofs.path];
  return (await Promise.all(files.map((f) => access(f, constants.X_OK).then(() => true, () => false)))).every(Boolean);
}

async function answers(url: string, init: RequestInit, check: (response: Response) => boolean): Promise<boolean> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return check(response);
  } catch {
    return false;
  }
}

/** The services of an earlier `up`, when every one of them still answers as described. */
async function stillRunning(): Promise<TestServices | undefined> {
  let services: unknown;
  try {
    services = JSON.parse(await readFile(SERVICES_JSON, 'utf8'));
  } catch {
    return undefined;
  }
  if (!isTestServices(services) || services.missing.length > 0) return undefined;
  const { registries, baseImage, dockerHost, modernDocker, containerdStoreDocker } = services;
  if (!registries || !baseImage || !dockerHost || !modernDocker || !containerdStoreDocker || !services.buildx || !(await provided(services.erofsContainerd))) return undefined;
  const slash = baseImage.ref.indexOf('/');
  const colon = baseImage.ref.lastIndexOf(':');
  const manifest = `http://${baseImage.ref.slice(0, slash)}/v2/${baseImage.ref.slice(slash + 1, colon)}/manifests/${baseImage.ref.slice(colon + 1)}`;
  const checks = await Promise.all([
    dockerPing(dockerHost),
    dockerPing(modernDocker.host),
    dockerPing(containerdStoreDocker.host),
    answers(`http://${registries.plain.host}/v2/`, {}, (r) => r.status === 200),
    answers(`http://${registries.basic.host}/v2/`, {}, (r) => r.status === 401 && /^Basic /.test(r.headers.get('www-authenticate') ?? '')),
    answers(`http://${registries.token.host}/v2/`, {}, (r) => r.status === 401 && /^Bearer /.test(r.headers.get('www-authenticate') ?? '')),
    answers(new URL('/healthz', registries.token.realm).href, {}, (r) => r.status === 200),
    answers(
      manifest,
      { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } },
      (r) => r.headers.get('docker-content-digest') === baseImage.digest,
    ),
  ]);
  return checks.every(Boolean) ? services : undefined;
}

async function readExisting(): Promise<TestServices> {
  const file = SERVICES_JSON;
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (isTestServices(parsed)) return parsed;
  } catch {
    // no usable file: everything is missing
  }
  return {
    ...NO_SERVICES,
    missing: [`test services are off (PREBUILT_TEST_SERVICES=off) and ${file} does not exist: run \`bash scripts/test-services.sh up\``],
  };
}

export default async function setup(project: TestProject): Promise<void> {
  const off = process.env['PREBUILT_TEST_SERVICES'] === 'off';
  const services = off ? await readExisting() : ((await stillRunning()) ?? (await runUp()));
  if (services.missing.length > 0) {
    process.stderr.write(`[test-services] missing (tests that need these skip, or fail in CI):\n  ${services.missing.join('\n  ')}\n`);
  }
  project.provide('services', services);
}
