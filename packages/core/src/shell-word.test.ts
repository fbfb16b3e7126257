import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fileArgument, shellWord } from './shell-word.js';

describe('shellWord', () => {
  it('leaves a word the shell takes literally as it is', () => {
    expect(shellWord('flows/my_flow.py')).toBe('flows/my_flow.py');
    expect(shellWord('/srv/a-b+c@d,e=f:g%h.py')).toBe('/srv/a-b+c@d,e=f:g%h.py');
  });

  it('single-quotes anything else, a quote inside closed, escaped and reopened', () => {
    expect(shellWord('my flow.py')).toBe("'my flow.py'");
    expect(shellWord('x.py; rm -rf ~')).toBe("'x.py; rm -rf ~'");
    expect(shellWord("it's.py")).toBe("'it'\\''s.py'");
    expect(shellWord('$(id).py')).toBe("'$(id).py'");
    expect(shellWord('')).toBe("''");
    // zsh expands a word starting with '=' (the path of a command): quoted.
    expect(shellWord('=python.py')).toBe("'=python.py'");
    expect(shellWord('a=b.py')).toBe('a=b.py');
  });

  it('quotes so that sh reads back the very word', () => {
    for (const word of ["a'b", 'two words', '$HOME', 'back\\slash', 'new\nline', '*.py', '-x']) {
      const echoed = execFileSync('sh', ['-c', `printf %s ${shellWord(word)}`], { encoding: 'utf8' });
      expect(echoed).toBe(word);
    }
  });
});

describe('fileArgument: a file as a suggested command names it', () => {
  it("a relative path starting with '-' gets ./ (else the command reads it as an option), then quoted as a shell word", () => {
    expect(fileArgument('-x.py')).toBe('./-x.py');
    expect(fileArgument('--help')).toBe('./--help');
    expect(fileArgument("-it's.py")).toBe("'./-it'\\''s.py'");
    expect(fileArgument('flows/-x.py')).toBe('flows/-x.py');
    expect(fileArgument('/srv/-x.py')).toBe('/srv/-x.py');
    expect(fileArgument('my flow.py')).toBe("'my flow.py'");
  });
});
