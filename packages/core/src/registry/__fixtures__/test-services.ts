import { inject } from 'vitest';

/** The shape test/global-setup.ts provides as `inject('services')` (see scripts/test-services.sh). */
export interface TestServices {
  dockerHost: string | null;
  registries: {
    plain: { host: string };
    basic: { host: string; username: string; password: string };
    token: { host: string; username: string; password: string; realm: string; service: string };
  } | null;
  baseImage: { ref: string; digest: string } | null;
  missing: string[];
}

/** The test services, or undefined when no globalSetup provides them. */
export function testServices(): TestServices | undefined {
  try {
    return (inject as (key: string) => unknown)('services') as TestServices | undefined;
  } catch {
    return undefined;
  }
}

/** Why registry tests skip, or undefined when the registries are there. */
export function registriesMissing(services: TestServices | undefined): string | undefined {
  if (!services) return 'no test services: run `bash scripts/test-services.sh up` and the tests from the repo root (test/global-setup.ts provides them)';
  if (!services.registries) {
    return `test registries are not running (${services.missing.join('; ') || 'unknown reason'}): run \`bash scripts/test-services.sh up\``;
  }
  return undefined;
}
