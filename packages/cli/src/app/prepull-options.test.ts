import { describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core';
import { DEFAULT_PAUSE_IMAGE, parseNodeSelector, parseToleration, pauseImage } from './prepull-options.js';

describe('prepull options', () => {
  it('--node-selector takes key=value labels (prefixed keys, empty values) and refuses anything else', () => {
    expect(parseNodeSelector(['kubernetes.io/arch=amd64', 'pool=', 'team=ml'])).toEqual({ 'kubernetes.io/arch': 'amd64', pool: '', team: 'ml' });
    for (const bad of ['arch', '=x', 'a b=c', 'k=v v', `k=${'x'.repeat(64)}`, 'Bad_Prefix/k=v']) expect(() => parseNodeSelector([bad]), bad).toThrow(ConfigError);
  });

  it('--toleration: key=value:Effect, key:Effect, key, *', () => {
    expect(parseToleration('dedicated=ml:NoSchedule')).toEqual({ key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' });
    expect(parseToleration('nvidia.com/gpu:NoExecute')).toEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoExecute' });
    expect(parseToleration('spot')).toEqual({ key: 'spot', operator: 'Exists' });
    expect(parseToleration('*')).toEqual({ operator: 'Exists' });
    expect(() => parseToleration('gpu:Sometimes')).toThrow(expect.objectContaining({ name: 'ConfigError', hint: expect.stringContaining('Effect is one of NoSchedule, PreferNoSchedule, NoExecute') }));
  });

  it('the pause image: the option, else the setting, else the default; a bad reference is a ConfigError', () => {
    expect(pauseImage(undefined, {})).toBe(DEFAULT_PAUSE_IMAGE);
    expect(pauseImage(undefined, { METAFLOW_PREBUILT_PAUSE_IMAGE: 'mirror.local/pause:3.9' })).toBe('mirror.local/pause:3.9');
    expect(pauseImage('other/pause:1', { METAFLOW_PREBUILT_PAUSE_IMAGE: 'mirror.local/pause:3.9' })).toBe('other/pause:1');
    expect(() => pauseImage('pause@sha256:123', {})).toThrow(ConfigError);
  });
});
