import { describe, expect, it } from 'vitest';
import type { BuildRequest } from '../contracts.js';
import { CancelledError, ExitCode } from '../errors.js';
import { Secret } from '../secret.js';
import { BuildLog, cancelledError, scrubber, withPushPhase } from './build-log.js';

describe('BuildLog', () => {
  it('splits chunks into lines (\\n, \\r\\n, \\r), drops blank lines, keeps a partial line until flush', () => {
    const lines: string[] = [];
    const log = new BuildLog((line) => lines.push(line), (text) => text, 10);
    log.write('one\r\ntw');
    log.write('o\n\nthree\rfour  ');
    expect(lines).toEqual(['one', 'two', 'three']);
    log.flush();
    expect(lines).toEqual(['one', 'two', 'three', 'four']);
    log.flush();
    expect(lines).toHaveLength(4);
  });

  it("a build step's line of 200 000 spaces between two words takes linear time (trailing whitespace is trimmed, the inner kept)", () => {
    const lines: string[] = [];
    const log = new BuildLog((line) => lines.push(line), (text) => text, 10);
    const started = performance.now();
    log.line(`a${' '.repeat(200_000)}b \t`);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(lines).toEqual([`a${' '.repeat(200_000)}b`]);
  });

  it('keeps only the last lines as the tail', () => {
    const log = new BuildLog(undefined, (text) => text, 2);
    for (const line of ['a', 'b', 'c']) log.line(line);
    expect(log.tail).toEqual(['b', 'c']);
  });

  it('scrubs every line before the sink and the tail see it', () => {
    const lines: string[] = [];
    const scrub = scrubber({ registry: 'r', source: 'test', username: 'u', password: new Secret('hunter22'), identityToken: new Secret('tok3n') });
    const log = new BuildLog((line) => lines.push(line), scrub, 5);
    log.write('login hunter22 and tok3n\n');
    expect(lines).toEqual(['login <redacted> and <redacted>']);
    expect(log.tail).toEqual(lines);
    expect(log.scrub('x hunter22')).toBe('x <redacted>');
  });
});

describe('scrubber', () => {
  it('leaves text alone without credentials or with secrets shorter than 4 characters', () => {
    expect(scrubber(undefined)('abc')).toBe('abc');
    expect(scrubber({ registry: 'r', source: 'test', password: new Secret('ab') })('abc')).toBe('abc');
  });
});

describe('cancelledError', () => {
  it('keeps the exit code of SIGTERM/SIGINT and the reason as the cause', () => {
    const terminated = new AbortController();
    terminated.abort('SIGTERM');
    const error = cancelledError(terminated.signal, 'The build');
    expect(error).toBeInstanceOf(CancelledError);
    expect(error.message).toBe('The build was cancelled.');
    expect(error.cause).toBe('SIGTERM');
    expect(error.exitCode).toBe(ExitCode.terminated);
    const other = new AbortController();
    other.abort(new Error('timeout'));
    expect(cancelledError(other.signal, 'The build').exitCode).toBe(ExitCode.interrupted);
  });
});

describe('withPushPhase', () => {
  it('reports pushing once, at the first matching line, and forwards every line', () => {
    const phases: string[] = [];
    const lines: string[] = [];
    const request = { onPhase: (phase: string) => phases.push(phase), log: (line: string) => lines.push(line) } as unknown as BuildRequest;
    const sink = withPushPhase(request, /^push /);
    for (const line of ['build', 'push a', 'push b']) sink(line);
    expect(phases).toEqual(['pushing']);
    expect(lines).toEqual(['build', 'push a', 'push b']);
  });
});

describe('BuildLog.forRequest and failure', () => {
  it('sends scrubbed lines to the request, reports pushing once, and makes a failed result with the tail', () => {
    const phases: string[] = [];
    const lines: string[] = [];
    const request = {
      onPhase: (phase: string) => phases.push(phase),
      log: (line: string) => lines.push(line),
      pushCredentials: { registry: 'r', source: 'test', password: new Secret('s3cret!') },
    } as unknown as BuildRequest;
    const log = BuildLog.forRequest(request, /^push /, 2);
    log.write('step s3cret!\npush a\npartial');
    expect(phases).toEqual(['pushing']);
    expect(lines).toEqual(['step <redacted>', 'push a']);
    expect(log.failure('failed with s3cret!')).toEqual({ ok: false, reason: 'failed with <redacted>', logTail: ['push a', 'partial'] });
  });
});
