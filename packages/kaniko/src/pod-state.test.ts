import { describe, expect, it } from 'vitest';
import { readPod, type PodObject } from './pod-state.js';

const pod = (status: PodObject['status']): PodObject => ({ metadata: { name: 'p1' }, status });
const container = (state: NonNullable<NonNullable<PodObject['status']>['containerStatuses']>[number]['state']) => ({
  containerStatuses: [{ name: 'kaniko', state }],
});

describe('readPod', () => {
  it('notes a pod waiting for a node, with no log and no end yet', () => {
    const state = readPod(pod({ conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' }] }));
    expect(state).toEqual({
      name: 'p1',
      note: 'prebuilt: pod p1 is not scheduled yet: Unschedulable: 0/3 nodes are available',
      hasLog: false,
      terminated: false,
      outcome: undefined,
    });
  });

  it('takes the digest from a clean exit, and fails one without a digest', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    expect(readPod(pod(container({ terminated: { exitCode: 0, message: `${digest}\n` } })))).toMatchObject({
      hasLog: true,
      terminated: true,
      outcome: { kind: 'succeeded', digest },
    });
    expect(readPod(pod(container({ terminated: { exitCode: 0, message: 'done' } }))).outcome).toEqual({
      kind: 'failed',
      reason: "the executor finished without writing a digest to its termination log (got 'done')",
    });
  });

  it('fails on a non-zero exit (last message line), a stuck image pull and a failed pod', () => {
    expect(readPod(pod(container({ terminated: { exitCode: 1, reason: 'Error', message: 'a\nerror building image\n' } }))).outcome).toEqual({
      kind: 'failed',
      reason: 'the executor exited with code 1 (Error): error building image',
    });
    expect(readPod(pod(container({ waiting: { reason: 'ImagePullBackOff', message: 'no such image' } }))).outcome).toEqual({
      kind: 'failed',
      reason: 'the executor pod p1 cannot start (ImagePullBackOff: no such image)',
    });
    expect(readPod(pod(container({ waiting: { reason: 'ContainerCreating' } }))).outcome).toBeUndefined();
    expect(readPod(pod({ phase: 'Failed', reason: 'Evicted', message: 'low on memory' })).outcome).toEqual({
      kind: 'failed',
      reason: 'the executor pod p1 failed: Evicted low on memory',
    });
  });
});
