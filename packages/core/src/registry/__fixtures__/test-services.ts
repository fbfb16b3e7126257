// The shared test services (scripts/test-services.sh, provided by test/global-setup.ts), and the
// rule for a test that needs one: skipped saying why on a developer's machine, failing saying why in
// CI (test/services.ts).
import { describeOrFailInCi, getServices, itWith, missingFor, type TestServices } from '../../../../../test/services.js';

export { describeOrFailInCi, itWith, missingFor };
export type { TestServices };

/** The test services (everything missing when no globalSetup provides them). */
export function testServices(): TestServices {
  return getServices();
}

/** Why registry tests cannot run (what is missing and how to provide it), or undefined when the registries are there. */
export function registriesMissing(services: TestServices = getServices()): string | undefined {
  return missingFor(['registries'], services);
}
