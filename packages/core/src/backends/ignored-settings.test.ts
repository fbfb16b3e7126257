import { expect, it } from 'vitest';
import { backendSettingsPrefix, ignoredServiceSettings } from './ignored-settings.js';

const SERVICES = ['docker', 'buildx', 'kaniko', 'codebuild', 'oci'];

it("a first-party backend's settings prefix is its name in capitals", () => {
  expect(backendSettingsPrefix('oci')).toBe('METAFLOW_PREBUILT_OCI_');
  expect(backendSettingsPrefix('my-service')).toBe('METAFLOW_PREBUILT_MY_SERVICE_');
});

it("lists the set settings of the services not selected, by service; never the selected one's, shared ones, empty ones or another kind's", () => {
  const env = {
    METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd',
    METAFLOW_PREBUILT_OCI_CHUNK_SIZE: '4194304',
    METAFLOW_PREBUILT_OCI_RUNNERS: ' ',
    METAFLOW_PREBUILT_KANIKO_CPU: '2',
    METAFLOW_PREBUILT_DOCKER_NETWORK: 'host',
    METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE: 'me',
    METAFLOW_PREBUILT_PLATFORM: 'linux-aarch64',
    METAFLOW_PREBUILT_BUILDX_BUILDER: 'b',
  };
  expect(ignoredServiceSettings(env, 'docker', SERVICES)).toEqual([
    { service: 'buildx', settings: ['METAFLOW_PREBUILT_BUILDX_BUILDER'] },
    { service: 'kaniko', settings: ['METAFLOW_PREBUILT_KANIKO_CPU'] },
    { service: 'oci', settings: ['METAFLOW_PREBUILT_OCI_CHUNK_SIZE', 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION'] },
  ]);
  expect(ignoredServiceSettings(env, 'oci', SERVICES).map((i) => i.service)).toEqual(['docker', 'buildx', 'kaniko']);
  expect(ignoredServiceSettings({ METAFLOW_PREBUILT_PLATFORM: 'linux-64' }, 'oci', SERVICES)).toEqual([]);
});

it("a third-party service whose prefix extends a known one's keeps its own settings", () => {
  expect(ignoredServiceSettings({ METAFLOW_PREBUILT_OCI_X_MODE: 'a' }, 'oci-x', ['oci', 'oci-x'])).toEqual([]);
});
