import { ResolutionError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { manylinuxTags, pipRequirement } from './pip-resolver.js';

describe('pip requirements', () => {
  it.each([
    ['requests', '', 'requests'],
    ['requests', '2.32.3', 'requests==2.32.3'],
    ['requests', '>=2.21.0', 'requests>=2.21.0'],
    ['requests', '~=2.31', 'requests~=2.31'],
    ['requests[socks]', '!=2.0', 'requests[socks]!=2.0'],
    ['requests', '>=2.21, <3', 'requests>=2.21, <3'],
    ['requests', '==2.*', 'requests==2.*'],
    ['numpy', '1!2.0rc1.post2+local.7', 'numpy==1!2.0rc1.post2+local.7'],
  ])('%s %j → %s', (name, spec, requirement) => {
    expect(pipRequirement(name, spec)).toBe(requirement);
  });

  it('rejects names and specs pip would misread (an option, a URL, a space)', () => {
    expect(() => pipRequirement('--index-url', '')).toThrow(ResolutionError);
    expect(() => pipRequirement('requests', 'https://evil/x.whl')).toThrow(/Invalid PyPI version spec/);
    expect(() => pipRequirement('re quests', '')).toThrow(/Invalid PyPI package name/);
  });

  it.each([
    ['1.0; rm -rf /', /';' \(an environment marker or a shell command separator\) at position 4/],
    ['>=2 && echo', /'&' at position 5/],
    ['>=2 | cat', /'\|' at position 5/],
    ['>=2 $(id)', /'\$' at position 5/],
    ['>=2 --index-url x', /'>=2 --index-url x' is not an operator followed by a version/],
    ['>=2,,<3', /an empty clause/],
    ['>=2 <3', /'>=2 <3' is not an operator followed by a version/],
    ['1.0 echo', /'1.0 echo' is not a version/],
    ['>=', /'>=' is not an operator followed by a version/],
  ])('rejects the spec %j naming the field and the problem before pip sees it', (spec, problem) => {
    let error: unknown;
    try {
      pipRequirement('pandas', spec, ['start']);
    } catch (caught) {
      error = caught;
    }
    expect(ResolutionError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(`Invalid PyPI version spec '${spec}' for package 'pandas' in the @pypi packages of step start`);
    expect((error as Error).message).toMatch(problem);
  });
});

describe('manylinux tags', () => {
  it('lists every manylinux tag up to the glibc version, with the legacy aliases', () => {
    const x86 = manylinuxTags('linux-64', '2.28');
    expect(x86[0]).toBe('manylinux_2_28_x86_64');
    expect(x86).toContain('manylinux2014_x86_64');
    expect(x86).toContain('manylinux2010_x86_64');
    expect(x86.at(-1)).toBe('manylinux1_x86_64');
    expect(x86).not.toContain('manylinux_2_29_x86_64');
    const arm = manylinuxTags('linux-aarch64', '2.17');
    expect(arm).toEqual(['manylinux_2_17_aarch64', 'manylinux2014_aarch64']);
    expect(() => manylinuxTags('linux-64', 'musl')).toThrow(/glibc version 'musl'/);
  });
});
