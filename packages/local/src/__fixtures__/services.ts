import { inject } from 'vitest';

/** What test/global-setup.ts provides (scripts/test-services.sh). */
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

/** The test services, or a value saying everything is missing when no global setup provided them. */
export function testServices(): TestServices {
  let services: TestServices | undefined;
  try {
    services = inject('services' as never) as TestServices | undefined;
  } catch {
    services = undefined;
  }
  return services ?? { dockerHost: null, registries: null, baseImage: null, missing: ['test services (run `pnpm services` / test/global-setup.ts)'] };
}
