import { describe, expect, it } from 'vitest';
import { InputError, type ImageMap } from '@prebuilt/core';
import { prepullImages, prepullPullSecrets } from './prepull-images.js';

const D = `sha256:${'d'.repeat(64)}`;
const map: ImageMap = {
  flow: 'F',
  images: {
    x: { image: 'r/x:env-x', digest: D, pinnedImage: `r/x:env-x@${D}`, python: '/opt/prebuilt/env/bin/python', status: 'present', steps: ['start', 'join_all'], pullConfig: { kubernetes: { imagePullSecrets: ['pull-a'] } } },
    y: { image: 'r/x:env-y', digest: D, pinnedImage: `r/x:env-y@${D}`, python: '/opt/prebuilt/env/bin/python', status: 'built', steps: ['gone'], pullConfig: { kubernetes: { imagePullSecrets: ['pull-old'] } } },
  },
  steps: {
    start: { envId: 'x', image: 'r/x:env-x', pinnedImage: `r/x:env-x@${D}`, python: '/opt/prebuilt/env/bin/python' },
    plain: { envId: null, image: 'python:3.11-slim', python: 'python' },
    join_all: { envId: 'x', image: 'r/x:env-x', pinnedImage: `r/x:env-x@${D}`, python: '/opt/prebuilt/env/bin/python' },
    gone: { envId: 'y', image: 'r/x:env-y', pinnedImage: `r/x:env-y@${D}`, python: '/opt/prebuilt/env/bin/python' },
  },
};

describe('prepullImages / prepullPullSecrets', () => {
  it('one entry per distinct pinned image of the flow\'s steps (a disabled step: its base image), named after its first step', () => {
    expect(prepullImages(map, ['start', 'plain', 'join_all'], 'flow.py')).toEqual([
      { image: `r/x:env-x@${D}`, steps: ['start', 'join_all'], python: '/opt/prebuilt/env/bin/python', container: 'pull-1-start' },
      { image: 'python:3.11-slim', steps: ['plain'], python: 'python', container: 'pull-2-plain' },
    ]);
  });

  it('a step of the flow the map lacks (a stale map) is an InputError (exit 2) saying to build first', () => {
    const error = (() => {
      try {
        return prepullImages(map, ['start', 'new_step', 'other'], 'flow.py');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).exitCode).toBe(2);
    expect((error as InputError).message).toContain('no image for steps new_step, other');
    expect((error as InputError).hint).toBe("Run `prebuilt build flow.py` first.");
  });

  it('the pull secrets are those of the used images\' pull config, then the extra ones, once each', () => {
    const images = prepullImages(map, ['start', 'plain'], 'flow.py');
    expect(prepullPullSecrets(map, images, ['pull-b', 'pull-a'])).toEqual(['pull-a', 'pull-b']);
    expect(prepullPullSecrets({ ...map, images: {} }, images)).toEqual([]);
    expect(() => prepullPullSecrets(map, images, ['Not A Name'])).toThrow(/--pull-secret Not A Name is not a Kubernetes secret name/);
  });
});
