import { describe, expect, it } from 'vitest';
import { materializedRecipe, type LockedEnv } from '@prebuilt/core';
import { expand, parseDockerfile, renderWord, type Instruction } from './dockerfile.js';

const env = (pairs: Record<string, string> = {}): Map<string, string> => new Map(Object.entries(pairs));

function pairsOf(instruction: Instruction | undefined, vars = env()): [string, string][] {
  if (instruction?.kind !== 'env' && instruction?.kind !== 'label') throw new Error(`not ENV/LABEL: ${JSON.stringify(instruction)}`);
  return instruction.pairs.map(([k, v]) => [renderWord(k, vars), renderWord(v, vars)]);
}

describe('parseDockerfile', () => {
  it('parses the materialized recipe Dockerfile: FROM, COPY, ENV with ${PATH:-…}, LABEL with quotes', () => {
    const lock: LockedEnv = {
      specHash: 's',
      request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform: 'linux-64' },
      platform: 'linux-64',
      pythonVersion: '3.11.2',
      packages: [],
    };
    const digest = `sha256:${'b'.repeat(64)}`;
    const recipe = materializedRecipe({ lock, envId: 'abc123', prefix: '/opt/prebuilt/envs/abc123', base: { ref: 'base:1', digest, pinned: `127.0.0.1:5000/base@${digest}` } });
    const parsed = parseDockerfile(recipe.dockerfile);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.instructions.map((i) => i.kind)).toEqual(['from', 'copy', 'env', 'label']);
    expect(parsed.instructions[0]).toMatchObject({ kind: 'from', image: `127.0.0.1:5000/base@${digest}` });
    expect(parsed.instructions[1]).toMatchObject({ kind: 'copy', sources: ['prefix/'], dest: '/opt/prebuilt/envs/abc123/' });
    expect(pairsOf(parsed.instructions[2], env({ PATH: '/usr/bin:/bin' }))).toEqual([
      ['PATH', '/opt/prebuilt/envs/abc123/bin:/usr/bin:/bin'],
      ['METAFLOW_SKIP_INSTALL_DEPENDENCIES', '1'],
    ]);
    expect(pairsOf(parsed.instructions[2])[0]![1]).toBe('/opt/prebuilt/envs/abc123/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const labels = Object.fromEntries(pairsOf(parsed.instructions[3]));
    expect(labels['dev.prebuilt.env-id']).toBe('abc123');
    expect(labels['dev.prebuilt.base']).toBe(`127.0.0.1:5000/base@${digest}`);
  });

  it('keeps escaped and single-quoted text literal, and supports the legacy ENV form', () => {
    const parsed = parseDockerfile(`FROM scratch\nENV A="x \\$HOME \\"q\\"" B='$HOME' C=$HOME/d\nENV LEGACY some value $HOME\nLABEL "my key"="v w"\n`);
    if (!parsed.ok) throw new Error(parsed.reason);
    const vars = env({ HOME: '/root' });
    expect(pairsOf(parsed.instructions[1], vars)).toEqual([
      ['A', 'x $HOME "q"'],
      ['B', '$HOME'],
      ['C', '/root/d'],
    ]);
    expect(pairsOf(parsed.instructions[2], vars)).toEqual([['LEGACY', 'some value /root']]);
    expect(pairsOf(parsed.instructions[3])).toEqual([['my key', 'v w']]);
  });

  it('parses WORKDIR, USER, CMD and ENTRYPOINT (JSON and shell form), comments and continuations', () => {
    const parsed = parseDockerfile(`# syntax=docker/dockerfile:1\nFROM base:1 AS env\n# a comment\nWORKDIR /work\nUSER 1000\nCMD ["python", \\\n  "-V"]\nENTRYPOINT echo hi\n`);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.instructions.map((i) => i.kind)).toEqual(['from', 'workdir', 'user', 'cmd', 'entrypoint']);
    expect(parsed.instructions[3]).toMatchObject({ args: ['python', '-V'] });
    expect(parsed.instructions[4]).toMatchObject({ args: ['/bin/sh', '-c', 'echo hi'] });
  });

  it('refuses RUN by name and line, suggesting the docker build service', () => {
    const parsed = parseDockerfile('FROM base:1\nCOPY a /a\nRUN pip install x\n');
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.instruction).toBe('RUN');
    expect(parsed.line).toBe(3);
    expect(parsed.reason).toMatch(/line 3: RUN cannot be executed by the oci build service/);
    expect(parsed.reason).toMatch(/METAFLOW_PREBUILT_BUILD_SERVICE=docker/);
  });

  it('refuses multi-stage builds, COPY options and wildcards, ARG, and a missing FROM', () => {
    const reason = (text: string): string => {
      const parsed = parseDockerfile(text);
      if (parsed.ok) throw new Error(`accepted: ${text}`);
      return parsed.reason;
    };
    expect(reason('FROM a\nFROM b\n')).toMatch(/multi-stage/);
    expect(reason('FROM a\nCOPY --from=x /a /b\n')).toMatch(/COPY options \(--from=x\)/);
    expect(reason('FROM a\nCOPY *.txt /b/\n')).toMatch(/wildcard/);
    expect(reason('ARG X=1\nFROM a\n')).toMatch(/ARG cannot be executed/);
    expect(reason('COPY a /b\n')).toMatch(/no FROM/);
    expect(reason('FROM a\nENV A="unterminated\n')).toMatch(/unterminated double quote/);
  });
});

describe('expand', () => {
  it('expands $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative}', () => {
    const vars = env({ A: 'a', EMPTY: '' });
    expect(expand('$A-${A}-${MISSING:-d}-${EMPTY:-e}-${A:+alt}-${MISSING:+alt}-$MISSING.', vars)).toBe('a-a-d-e-alt--.');
  });
});
