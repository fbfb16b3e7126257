import { describeOrFailInCi, getServices, itWith, missingFor, registerOrFailInCi, type TestServices } from '../../../../test/services.js';

export { describeOrFailInCi, itWith, missingFor, registerOrFailInCi };
export type { TestServices };

/** The test services provided by test/global-setup.ts (everything missing when none were). */
export function testServices(): TestServices {
  return getServices();
}
