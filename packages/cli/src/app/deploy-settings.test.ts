import { ConfigError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BASE_IMAGE, deploySettings } from './deploy-settings.js';

describe('deploySettings: the base images', () => {
  it('default, or the image references given', () => {
    expect(deploySettings({})).toMatchObject({ baseImage: DEFAULT_BASE_IMAGE, gpuBaseImage: DEFAULT_BASE_IMAGE });
    expect(deploySettings({ METAFLOW_PREBUILT_BASE_IMAGE: '127.0.0.1:5000/team/base:1.0', METAFLOW_PREBUILT_GPU_BASE_IMAGE: 'nvidia/cuda:12.4.1-base' })).toMatchObject({
      baseImage: '127.0.0.1:5000/team/base:1.0',
      gpuBaseImage: 'nvidia/cuda:12.4.1-base',
    });
  });

  it.each(['METAFLOW_PREBUILT_BASE_IMAGE', 'METAFLOW_PREBUILT_GPU_BASE_IMAGE'])('%s that is not an image reference: a ConfigError naming the variable, the value and why', (envVar) => {
    let error: unknown;
    try {
      deploySettings({ [envVar]: 'not a ref' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`${envVar}='not a ref' is not an image reference: it contains whitespace.`);
    expect((error as ConfigError).setting).toBe(envVar);
    expect((error as ConfigError).hint).toContain(`Set ${envVar} to [host[:port]/]repository[:tag]`);
  });
});
