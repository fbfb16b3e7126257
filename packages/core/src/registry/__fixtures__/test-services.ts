// The shared test services (scripts/test-services.sh, provided by test/global-setup.ts).
import { getServices, missingFor, type TestServices } from '../../../../../test/services.js';

export type { TestServices };

/** The test services (everything missing when no globalSetup provides them). */
export function testServices(): TestServices {
  return getServices();
}

/** Why registry tests skip (what is missing and how to provide it), or undefined when the registries are there. */
export function registriesMissing(services: TestServices = getServices()): string | undefined {
  return missingFor(['registries'], services);
}
