import { describe, expect, it } from 'vitest';
import type { ImageMap, LockEntry } from '@prebuilt/core';
import { withStepPackages } from './step-packages.js';

function entry(conda: Record<string, string>, pypi: Record<string, string>, pins: LockEntry['resolvedWith']['pins']): LockEntry {
  return {
    specHash: 'h',
    request: { python: '3.11', conda, pypi, channels: [], indexUrl: null, platform: 'linux-64' },
    platform: 'linux-64',
    pythonVersion: '3.11.9',
    packages: [],
    resolvedWith: { pins, glibc: '2.28' },
  } as LockEntry;
}

describe('withStepPackages', () => {
  it("writes each step's packages as Metaflow's get_environment names them: the pins, the step's own over them, conda and PyPI apart", () => {
    const step = { image: 'r/x:env-a', pinnedImage: 'r/x:env-a@sha256:1', python: '/opt/prebuilt/env/bin/python' };
    const map: ImageMap = {
      flow: 'F',
      images: {},
      steps: { start: { envId: 'a', ...step }, fetch: { envId: 'b', ...step }, end: { envId: null, image: 'base', python: 'python' }, gone: { envId: 'c', ...step } },
    };
    const s3 = { conda: { requests: '>=2.21.0', boto3: '>=1.14.0' }, pypi: {} };
    const out = withStepPackages(map, {
      // The user's own requests wins over the pin, as in Metaflow's {**pinned, **packages}.
      start: [entry({ tinynum: '1.4.0', requests: '2.31.0' }, {}, s3)],
      // A step with @pypi: Metaflow's pins are on the PyPI side.
      fetch: [entry({}, { tinyhttp: '' }, { conda: {}, pypi: { requests: '>=2.21.0', boto3: '>=1.14.0' } }), entry({}, { tinyhttp: '' }, { conda: {}, pypi: { requests: '>=2.21.0', boto3: '>=1.14.0' } })],
      end: null,
    });
    expect(out.steps.start!.packages).toEqual({ conda: { requests: '2.31.0', boto3: '>=1.14.0', tinynum: '1.4.0' }, pypi: {} });
    expect(out.steps.fetch!.packages).toEqual({ conda: {}, pypi: { requests: '>=2.21.0', boto3: '>=1.14.0', tinyhttp: '' } });
    // A disabled step, and a step the lock does not name, are left as they were.
    expect(out.steps.end).toEqual(map.steps.end);
    expect(out.steps.gone).toEqual(map.steps.gone);
    expect(map.steps.start).not.toHaveProperty('packages'); // the map given is not changed
  });
});
