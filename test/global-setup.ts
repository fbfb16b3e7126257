// vitest globalSetup: starts the test services (scripts/test-services.sh up) and provides their
// description to every test as `inject('services')` (see test/services.ts).
//
//   PREBUILT_TEST_SERVICES=off   do not run the script; use the services.json of an earlier `up`
//                                if there is one, else provide "everything missing" (tests skip)
//   PREBUILT_TEST_SERVICES_DIR   the script's state directory (default /var/tmp/prebuilt-test-services)
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type { TestServices } from './services.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'test-services.sh');
const STATE_DIR = process.env['PREBUILT_TEST_SERVICES_DIR'] ?? '/var/tmp/prebuilt-test-services';

const NO_SERVICES: TestServices = { dockerHost: null, registries: null, baseImage: null, missing: [] };

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
    const child = spawn('bash', [SCRIPT, 'up'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let pending = '';
    const shown: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
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
      try {
        const parsed: unknown = JSON.parse(stdout);
        if (!isTestServices(parsed)) return fail('its JSON output has an unexpected shape');
        resolve(parsed);
      } catch {
        fail('its output is not JSON');
      }
    });
  });
}

async function readExisting(): Promise<TestServices> {
  const file = join(STATE_DIR, 'services.json');
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
  const services = off ? await readExisting() : await runUp();
  if (services.missing.length > 0) {
    process.stderr.write(`[test-services] missing (tests that need these skip):\n  ${services.missing.join('\n  ')}\n`);
  }
  project.provide('services', services);
}
