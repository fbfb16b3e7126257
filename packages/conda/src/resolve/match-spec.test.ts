import { ResolutionError } from '@prebuilt/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { condaSpec, pythonSpec } from './match-spec.js';
import { loadRattler, type Rattler } from './rattler.js';

let rattler: Rattler;
beforeAll(async () => {
  rattler = await loadRattler();
});

describe('conda match specs', () => {
  it.each([
    ['numpy', '', 'numpy'],
    ['NumPy', '1.26.4', 'numpy ==1.26.4'],
    ['numpy', '>=1.26,<2', 'numpy >=1.26,<2'],
    ['numpy', '1.26.*', 'numpy 1.26.*'],
    ['numpy', '1.26.4 py311*', 'numpy ==1.26.4 py311*'],
    ['numpy', '  1.2|1.3 ', 'numpy 1.2|1.3'],
  ])('%s %j → %s', (name, value, spec) => {
    expect(condaSpec(rattler, name, value)).toEqual({ name: name.toLowerCase(), channel: null, spec });
  });

  it('channel::pkg keeps the channel as a URL (names expand to anaconda.org)', () => {
    expect(condaSpec(rattler, 'http://127.0.0.1:9/ch/::tinynum', '')).toEqual({ name: 'tinynum', channel: 'http://127.0.0.1:9/ch', spec: 'tinynum' });
    expect(condaSpec(rattler, 'bioconda::samtools', '1.19').channel).toBe('https://conda.anaconda.org/bioconda');
  });

  it('refuses a channel::pkg whose channel URL carries credentials (the request goes into the lock file), without printing them', () => {
    let error: unknown;
    try {
      condaSpec(rattler, 'https://ci:s3cret@private.example/ch::tinynum', '', ['start']);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ResolutionError);
    expect((error as ResolutionError).message).toContain("'https://***@private.example/ch::tinynum' carries credentials");
    expect(JSON.stringify({ message: (error as Error).message, hint: (error as ResolutionError).hint })).not.toContain('s3cret');
  });

  it('refuses a channel::pkg whose channel is a cloud metadata address: a flow names it, and lock would GET it without running the flow', () => {
    for (const channel of ['http://169.254.169.254/latest/meta-data', 'http://[fd00:ec2::254]/x', 'http://0.0.0.0:80/x']) {
      let error: unknown;
      try {
        condaSpec(rattler, `${channel}::tinynum`, '', ['start']);
      } catch (e) {
        error = e;
      }
      expect(error, channel).toBeInstanceOf(ResolutionError);
      expect((error as ResolutionError).message).toMatch(/^Invalid channel '.+' in conda package '.+::tinynum': Conda channel '.+' is (a link-local address|the EC2 instance metadata|an unspecified address)/);
    }
  });

  it('python: X.Y is any X.Y.z, X.Y.Z is exact', () => {
    expect(pythonSpec(rattler, '3.11').spec).toBe('python 3.11.*');
    expect(pythonSpec(rattler, '3.11.9').spec).toBe('python ==3.11.9');
  });

  it.each([
    ['numpy', '>>1', /Invalid conda version spec '>>1' for package 'numpy'/],
    ['numpy', '1 2 3', /Invalid conda spec/],
    ['numpy', '1.0 bad[build]', /Invalid conda spec/],
    ['num py', '', /Invalid conda package name/],
    ['numpy[version=">1"]', '', /Invalid conda package name/],
    ['::numpy', '', /Invalid channel/],
  ])('rejects %s %j before the solver sees it', (name, value, message) => {
    const error = (() => {
      try {
        condaSpec(rattler, name, value, ['start', 'end']);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ResolutionError);
    expect((error as ResolutionError).message).toMatch(message);
    expect((error as ResolutionError).message).toMatch(/\(steps start, end\)/);
    expect((error as ResolutionError).steps).toEqual(['start', 'end']);
  });
});
