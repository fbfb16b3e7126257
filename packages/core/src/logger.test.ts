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
});
