// The shared test services of this repository (scripts/test-services.sh, provided by test/global-setup.ts).
// An author outside this repository points the tests at a registry of their own instead.
// registerOrFailInCi: this repository's CI must run the conformance suites, not skip them.
export { getServices, missingFor, registerOrFailInCi, type TestServices } from '../../../../test/services.js';
