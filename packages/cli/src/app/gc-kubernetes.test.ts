// gc's Kubernetes keep set: the real @kubernetes/client-node against the FAKE Kubernetes API server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ConfigError, UnreachableError } from '@prebuilt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeKubernetesApi } from '../__fixtures__/fake-kubernetes-api.js';
import { keepFromKubernetes } from './gc-kubernetes.js';

const ARGO = '/apis/argoproj.io/v1alpha1/namespaces/metaflow';

describe('keepFromKubernetes (FAKE Kubernetes API)', () => {
  let fake: FakeKubernetesApi;
  let dir: string;
  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ namespaces: ['metaflow'] });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-gc-kube-'));
  });
  afterAll(async () => {
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const kubeConfig = async (file: string, token?: string): Promise<k8s.KubeConfig> => {
    const config = new k8s.KubeConfig();
    config.loadFromFile(await fake.writeKubeConfig(join(dir, file), token ? { token } : {}));
    return config;
  };

  it('every string at an image key of every WorkflowTemplate, CronWorkflow and Workflow, with the object that keeps it', async () => {
    fake.put(`${ARGO}/workflowtemplates`, {
      metadata: { name: 'flow' },
      spec: { templates: [{ container: { image: 'r/a:1' } }, { containerSet: { containers: [{ image: 'r/b:1' }] } }, { podSpecPatch: 'x', sidecars: [{ image: 'r/c:1' }] }] },
    });
    fake.put(`${ARGO}/cronworkflows`, { metadata: { name: 'nightly' }, spec: { workflowSpec: { templates: [{ script: { image: 'r/d:1' } }] } } });
    fake.put(`${ARGO}/workflows`, { metadata: { name: 'flow-x1' }, spec: { templates: [{ container: { image: 'r/a:1' } }] }, status: { nodes: { n: { image: 'r/in-status:1' } } } });
    fake.put('/apis/argoproj.io/v1alpha1/namespaces/other/workflows', { metadata: { name: 'elsewhere' }, spec: { templates: [{ container: { image: 'r/other:1' } }] } });
    const keep = await keepFromKubernetes('metaflow', { env: {} }, { k8s, kubeConfig: await kubeConfig('ok') });
    expect(new Set(keep.map((one) => `${one.reason} ${one.ref}`))).toEqual(
      new Set([
        'WorkflowTemplate metaflow/flow r/a:1',
        'WorkflowTemplate metaflow/flow r/b:1',
        'WorkflowTemplate metaflow/flow r/c:1',
        'CronWorkflow metaflow/nightly r/d:1',
        'Workflow metaflow/flow-x1 r/a:1',
        'Workflow metaflow/flow-x1 r/in-status:1',
      ]),
    );
  });

  it('reads every page of a chunked list (limit / continue)', async () => {
    for (let i = 0; i < 5; i++) fake.put(`${ARGO}/workflows`, { metadata: { name: `paged-${i}` }, spec: { templates: [{ container: { image: `r/paged:${i}` } }] } });
    fake.requests.length = 0;
    const keep = await keepFromKubernetes('metaflow', { env: {} }, { k8s, kubeConfig: await kubeConfig('paged'), pageSize: 2 });
    expect(keep.filter((one) => one.ref.startsWith('r/paged:')).map((one) => one.ref).sort()).toEqual(['r/paged:0', 'r/paged:1', 'r/paged:2', 'r/paged:3', 'r/paged:4']);
    expect(fake.requests.filter((line) => line.includes('/workflows?')).length).toBeGreaterThanOrEqual(3);
  });

  it('a name that is not a namespace is a ConfigError before any request', async () => {
    const before = fake.requests.length;
    await expect(keepFromKubernetes('Not_A_Namespace', { env: {} }, { k8s, kubeConfig: await kubeConfig('ok2') })).rejects.toBeInstanceOf(ConfigError);
    expect(fake.requests.length).toBe(before);
  });

  it('an API server that is not there is unreachable (exit 2)', async () => {
    const config = new k8s.KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const error = await keepFromKubernetes('metaflow', { env: {} }, { k8s, kubeConfig: config }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreachableError);
    expect((error as UnreachableError).exitCode).toBe(2);
  });
});
