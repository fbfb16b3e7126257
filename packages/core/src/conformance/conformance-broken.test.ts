/**
 * The suites must catch broken backends: runs __fixtures__/broken-backends.spec.ts (FAKE
 * backends that each break rules) in a child vitest and checks exactly which tests fail.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

interface JsonReport {
  testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

describe('conformance suites against FAKE broken backends', () => {
  it('fail exactly the rules each backend breaks, with messages naming the rule', { timeout: 90_000 }, () => {
    const vitestBin = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
    const config = fileURLToPath(new URL('./__fixtures__/broken-backends.vitest.config.ts', import.meta.url));
    const out = mkdtempSync(join(tmpdir(), 'prebuilt-conformance-report-'));
    try {
      const report = join(out, 'report.json');
      const child = spawnSync(process.execPath, [vitestBin, 'run', '--config', config, '--reporter=json', `--outputFile=${report}`], {
        encoding: 'utf8',
        timeout: 80_000,
        env: { ...process.env, CI: '1' },
      });
      expect(child.status, `child vitest exit code; stderr: ${child.stderr.slice(-2000)}`).toBe(1);
      const results = (JSON.parse(readFileSync(report, 'utf8')) as JsonReport).testResults.flatMap((f) => f.assertionResults);
      const failed = results.filter((r) => r.status === 'failed').map((r) => r.fullName).sort();
      const passed = results.filter((r) => r.status === 'passed').map((r) => r.fullName).sort();
      expect(failed).toEqual(
        [
          "build service conformance: FAKE broken builder definition: apiVersion 1, kind 'build-service', a name and a create function",
          'build service conformance: FAKE broken builder a failing Dockerfile is a result { ok: false, reason, logTail }, not an exception',
          'build service conformance: FAKE broken builder an already aborted signal rejects with CancelledError',
          'build service conformance: FAKE broken builder aborting a running build rejects with CancelledError promptly',
          'image registry conformance: FAKE broken registry imageTag is a tagged reference, the same for the same env and different for another env or platform',
          'image registry conformance: FAKE broken registry imageExists is false (without a digest) for a tag never pushed',
          "image registry conformance: FAKE broken registry imageExists(tag, { annotations: true }) after a push: the pushed digest, and the manifest's annotations (string values, {} for none) or no annotations field",
          'image registry conformance: FAKE broken registry pushCredentials are undefined or { registry, source } with every secret redacted in JSON, inspect and strings',
        ].sort(),
      );
      // The rules they keep still pass.
      expect(passed).toContain('build service conformance: FAKE broken builder a good Dockerfile builds and pushes: { ok: true, digest: "sha256:…" }');
      expect(passed).toContain('image registry conformance: FAKE broken registry baseImageIdentity resolves a pushed tag to its digest and pins it');
      expect(passed).toContain('image registry conformance: FAKE broken registry an already aborted signal makes imageExists reject with CancelledError');
      const messages = results.flatMap((r) => r.failureMessages).join('\n');
      expect(messages).toContain("'apiVersion' is 2, this prebuilt supports apiVersion 1");
      expect(messages).toContain('another platform, another tag');
      expect(messages).toContain('credentials.password is a Secret, not a plain string');
      expect(messages).toContain('expected CancelledError');
      expect(messages).toContain('the annotations of the manifest as pushed');
      expect(messages).not.toContain('broken-registry-password-456');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
