/**
 * What both conformance suites do the same way: describe or skip the suite, create the backend
 * under test, and check the shape of its definition.
 */
import { describe, expect, it } from 'vitest';
import type { BackendContext, BackendKind } from '../contracts.js';
import { definitionProblems } from './conformance-checks.js';

/** The options of a suite that say how to create its backend. */
export interface BackendUnderTest<T> {
  definition?: { create(options: Record<string, unknown>, context: BackendContext): T | Promise<T> };
  create?: () => T | Promise<T>;
  createOptions?: Record<string, unknown>;
}

/** Describes the suite `title` with `body`; with `skip`, a skipped suite instead whose title says why (the component it needs). */
export function describeSuite(title: string, skip: string | false | undefined, body: () => void): void {
  if (skip) {
    describe.skip(`${title} (skipped: ${skip})`, () => {
      it('needs the component named above', () => undefined);
    });
    return;
  }
  describe(title, body);
}

/** `create()`, else `definition.create(createOptions ?? {}, { env: process.env, cwd })`. */
export async function createUnderTest<T>(options: BackendUnderTest<T>, suite: string): Promise<T> {
  if (options.create) return options.create();
  if (!options.definition) throw new Error(`${suite} needs \`create\` or \`definition\`.`);
  return options.definition.create(options.createOptions ?? {}, { env: process.env, cwd: process.cwd() });
}

/** Registers the test that the definition (when given) is an apiVersion 1 definition of `kind`. */
export function definitionCheck(definition: unknown, kind: BackendKind): void {
  it.skipIf(!definition)(
    `definition: apiVersion 1, kind '${kind}', a name and a create function${definition ? '' : ' (skipped: no definition given)'}`,
    () => {
      const problems = definitionProblems(definition, kind);
      if (problems !== '') expect.unreachable(`the definition breaks the contract: ${problems}`);
    },
  );
}

/** Asserts that the created backend has a non-empty string name (`label` is `registry` or `service`). */
export function expectNamed(backend: { name: unknown }, label: string): void {
  expect(typeof backend.name, `${label}.name`).toBe('string');
  expect((backend.name as string).length, `${label}.name length`).toBeGreaterThan(0);
}
