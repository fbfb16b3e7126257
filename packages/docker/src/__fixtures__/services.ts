import { describeOrFailInCi, describeWith, getServices, itOrFailInCi, missingFor, registerOrFailInCi, type TestServices } from '../../../../test/services.js';

export { describeOrFailInCi, describeWith, itOrFailInCi, missingFor, registerOrFailInCi };
export type { TestServices };

/** The test services provided by test/global-setup.ts (everything missing when none were). */
export function testServices(): TestServices {
  return getServices();
}
