import { describe, expect, it } from 'vitest';
import { buildFailure } from './build-flow.js';
import type { DeployFlowResult } from './deploy-flow.js';

describe('buildFailure: the error of a build in which an image failed', () => {
  it('counts the failed images and points at where their reasons are, on the terminal and in --json', () => {
    const failed = { tag: 'r/x:env-a-amd64', reason: 'line 3: RUN is not supported', logTail: ['error'] };
    const result = { images: [failed, { tag: 'r/x:env-b-amd64' }], failures: [failed] } as unknown as DeployFlowResult;
    const error = buildFailure(result)!;
    expect(error.message).toBe('1 of 2 images failed to build; the image map was not written.');
    expect(error.hint).toContain('printed above; `failures` with --json');
    expect(error.hint).toContain('run prebuilt build again');
    expect(buildFailure({ images: [], failures: [] } as unknown as DeployFlowResult)).toBeUndefined();
  });
});
