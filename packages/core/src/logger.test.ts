import createDebug from 'debug';
import { format } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

const original = createDebug.log;
afterEach(() => {
  createDebug.log = original;
  createDebug.disable();
});

function captured(): string[] {
  const lines: string[] = [];
  createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
  return lines;
}

describe('createLogger (the --verbose debug log)', () => {
  it('logs text from outside with its escape sequences shown, not sent to the terminal, and URL credentials hidden', () => {
    const lines = captured();
    createDebug.enable('prebuilt:logger-test');
    const log = createLogger('logger-test');
    // A package file name from a hostile channel's repodata, a registry's message.
    log('downloading %s from %s', 'evil\x1b]52;c;cHduZWQ=\x07\x1b[2J-1.0-0.conda', 'https://user:tok3n@channel.example/c');
    log('registry said: %s', 'ok\r\x1b[2Kall good \u202egnp.exe');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('downloading evil\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J-1.0-0.conda from https://***@channel.example/c');
    expect(lines[1]).toContain('registry said: ok\\x0d\\x1b[2Kall good \\u202egnp.exe');
    // Only the namespace's own colouring (none without a TTY) reaches the output: no raw control character from the text.
    for (const line of lines) expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
  });

  it('escapes the objects %o and %O format (and arguments past the format) too, and hides URL credentials in them', () => {
    const lines = captured();
    createDebug.enable('prebuilt:logger-test');
    const log = createLogger('logger-test');
    // A channel list, an argument vector, a parsed flow: strings from outside inside objects.
    log('solving on %o', ['https://user:tok3n@channel.example/c', 'evil\u202egnp.exe\u200f']);
    log('read %O', { flow: 'Flow\u2066x\u2069\u2028\u061c', raw: '\x1b[2J\x9b' });
    log('extra', { name: '\u202eevil' });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain('https://***@channel.example/c');
    expect(lines[0]).toContain('evil\\u202egnp.exe\\u200f');
    expect(lines[1]).toContain('Flow\\u2066x\\u2069\\u2028\\u061c');
    expect(lines[2]).toContain('\\u202eevil');
    for (const line of lines) {
      expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
      expect(line).not.toContain('tok3n');
    }
  });
});
