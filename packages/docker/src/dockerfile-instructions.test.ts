import { describe, expect, it } from 'vitest';
import { dockerfileInstructions } from './dockerfile-instructions.js';

describe('dockerfileInstructions', () => {
  it("lists each instruction's keyword in order, as the legacy builder counts its steps: comments, blank lines and continuations are not steps", () => {
    const dockerfile = [
      '# syntax=docker/dockerfile:1',
      '# prebuilt micromamba recipe v2: env x',
      'ARG BASE=debian',
      'from mamba:1 AS micromamba',
      '',
      'FROM ${BASE}',
      'RUN micromamba create --yes \\',
      '  # a comment inside a continuation',
      '  && echo "FROM not-a-step" \\',
      '  && true',
      'ENV PATH=/opt/env/bin:$PATH',
      'LABEL a=b \\',
      '      c=d',
      '',
    ].join('\n');
    expect(dockerfileInstructions(dockerfile)).toEqual(['ARG', 'FROM', 'FROM', 'RUN', 'ENV', 'LABEL']);
  });

  it('honours the escape directive (a backtick continues a line)', () => {
    expect(dockerfileInstructions('# escape=`\nFROM x\nRUN a `\n  b\\\nCOPY c d\n')).toEqual(['FROM', 'RUN', 'COPY']);
  });
});
