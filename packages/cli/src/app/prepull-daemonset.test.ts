import { describe, expect, it } from 'vitest';
import { prepullDaemonSet, prepullName, SPEC_HASH_ANNOTATION } from './prepull-daemonset.js';
import type { PrepullSpec } from './prepull-daemonset.js';

const spec: PrepullSpec = {
  flow: 'TrainFlow',
  name: prepullName('TrainFlow'),
  namespace: 'metaflow',
  images: [{ image: 'r/x:env-a@sha256:' + 'a'.repeat(64), steps: ['start'], python: '/opt/prebuilt/env/bin/python', container: 'pull-1-start' }],
  pullSecrets: [],
  nodeSelector: {},
  tolerations: [],
  pauseImage: 'registry.k8s.io/pause:3.9',
};

describe('the prepull DaemonSet', () => {
  it('its name is stable, DNS-safe and at most 63 characters; flows that fold alike get different names', () => {
    expect(prepullName('TrainFlow')).toMatch(/^prebuilt-prepull-train-flow-[0-9a-f]{6}$/);
    expect(prepullName('TrainFlow')).toBe(prepullName('TrainFlow'));
    expect(prepullName('Train_Flow')).not.toBe(prepullName('TrainFlow'));
    // A placement of the flow's steps gets its own stable name; the same kebab part, another hash.
    expect(prepullName('TrainFlow', '{"gpu":true}')).toBe(prepullName('TrainFlow', '{"gpu":true}'));
    expect(prepullName('TrainFlow', '{"gpu":true}')).toMatch(/^prebuilt-prepull-train-flow-[0-9a-f]{6}$/);
    expect(prepullName('TrainFlow', '{"gpu":true}')).not.toBe(prepullName('TrainFlow'));
    expect(prepullName('TrainFlow', '{"gpu":true}')).not.toBe(prepullName('TrainFlow', '{"gpu":false}'));
    const long = prepullName(`A${'VeryLong'.repeat(20)}Flow_`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
  });

  it('the same spec gives the same hash; another image, selector or pause image another one', () => {
    const hash = prepullDaemonSet(spec).hash;
    expect(prepullDaemonSet({ ...spec }).hash).toBe(hash);
    expect(prepullDaemonSet(spec).daemonSet.metadata?.annotations?.[SPEC_HASH_ANNOTATION]).toBe(hash);
    expect(prepullDaemonSet({ ...spec, images: [{ ...spec.images[0]!, image: 'r/x:env-b@sha256:' + 'b'.repeat(64) }] }).hash).not.toBe(hash);
    expect(prepullDaemonSet({ ...spec, nodeSelector: { pool: 'gpu' } }).hash).not.toBe(hash);
    expect(prepullDaemonSet({ ...spec, pauseImage: 'mirror/pause:3.9' }).hash).not.toBe(hash);
  });

  it('runs unprivileged, mounts no token, and replaces all pods at once on an update', () => {
    const { daemonSet } = prepullDaemonSet(spec);
    const pod = daemonSet.spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.initContainers![0]!.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(daemonSet.spec!.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '100%' } });
    expect(daemonSet.spec!.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'prebuilt-prepull', 'app.kubernetes.io/instance': prepullName('TrainFlow') });
    expect(daemonSet.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('prebuilt');
  });
});
