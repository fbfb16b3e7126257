import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import { FakeKubernetesApi, type FakeKubernetesChange } from './fake-kubernetes-api.js';

describe('the FAKE Kubernetes API (through the real @kubernetes/client-node)', () => {
  let fake: FakeKubernetesApi;
  let dir: string;
  let kc: k8s.KubeConfig;
  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ namespaces: ['metaflow'] });
    dir = await mkdtemp(join(tmpdir(), 'fake-kube-'));
    kc = new k8s.KubeConfig();
    kc.loadFromFile(await fake.writeKubeConfig(join(dir, 'kubeconfig'), { namespace: 'metaflow' }));
  });
  afterAll(async () => {
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates, lists by label, replaces with a resourceVersion check, patches and deletes a DaemonSet', async () => {
    const changes: FakeKubernetesChange[] = [];
    fake.onChange = (change) => changes.push(change);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const body: k8s.V1DaemonSet = { metadata: { name: 'warm', labels: { app: 'prebuilt' } }, spec: { selector: { matchLabels: { app: 'w' } }, template: { spec: { containers: [{ name: 'c', image: 'x' }] } } } };
    const created = await apps.createNamespacedDaemonSet({ namespace: 'metaflow', body });
    expect(created.metadata?.resourceVersion).toBeTruthy();
    await expect(apps.createNamespacedDaemonSet({ namespace: 'metaflow', body })).rejects.toMatchObject({ code: 409 });
    expect((await apps.listNamespacedDaemonSet({ namespace: 'metaflow', labelSelector: 'app=prebuilt' })).items).toHaveLength(1);
    expect((await apps.listNamespacedDaemonSet({ namespace: 'metaflow', labelSelector: 'app=other' })).items).toHaveLength(0);
    await expect(apps.replaceNamespacedDaemonSet({ name: 'warm', namespace: 'metaflow', body: { ...body, metadata: { ...body.metadata, resourceVersion: '1' } } })).rejects.toMatchObject({ code: 409 });
    fake.put('/apis/apps/v1/namespaces/metaflow/daemonsets', { ...created, metadata: { ...created.metadata }, status: { numberReady: 2, desiredNumberScheduled: 2 } });
    expect((await apps.readNamespacedDaemonSet({ name: 'warm', namespace: 'metaflow' })).status?.numberReady).toBe(2);
    await apps.deleteNamespacedDaemonSet({ name: 'warm', namespace: 'metaflow' });
    await expect(apps.readNamespacedDaemonSet({ name: 'warm', namespace: 'metaflow' })).rejects.toMatchObject({ code: 404 });
    expect(changes.map((c) => c.type)).toEqual(['created', 'deleted']);
  });

  it('serves custom objects (Argo WorkflowTemplates) and refuses other namespaces and bad tokens', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const args = { group: 'argoproj.io', version: 'v1alpha1', namespace: 'metaflow', plural: 'workflowtemplates' };
    await custom.createNamespacedCustomObject({ ...args, body: { apiVersion: 'argoproj.io/v1alpha1', kind: 'WorkflowTemplate', metadata: { name: 'flow' }, spec: {} } });
    const listed = (await custom.listNamespacedCustomObject(args)) as { items: unknown[] };
    expect(listed.items).toHaveLength(1);
    await expect(custom.listNamespacedCustomObject({ ...args, namespace: 'other' })).rejects.toMatchObject({ code: 404 });
    const refused = new k8s.KubeConfig();
    refused.loadFromFile(await fake.writeKubeConfig(join(dir, 'forbidden'), { token: 'forbidden-token' }));
    await expect(refused.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject(args)).rejects.toMatchObject({ code: 403 });
  });
});
