import { CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildFailedError, CancelledError, ConfigError, EXIT_CODE_MEANINGS } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { createCliContext, type CliContext } from './cli-context.js';
import { interruptedReport, reportError } from './error-handler.js';
import { releaseJson, writeJsonResult } from './output.js';
import { main } from './main.js';

function capture(): { context: CliContext; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const context = createCliContext(new AbortController().signal, {
    stdout: { write: (t: string) => void (out += t) },
    stderr: { write: (t: string) => void (err += t) },
    env: {},
  });
  return { context, out: () => out, err: () => err };
}

describe('reportError (the one top-level handler)', () => {
  it('maps typed errors to their exit codes and prints message and hint without a stack', () => {
    const c = capture();
    expect(reportError(new ConfigError('The registry host is not set.', { hint: 'Set X.' }), c.context, { showStack: false })).toBe(2);
    expect(c.err()).toBe('error: The registry host is not set.\nhint: Set X.\n');
    expect(reportError(new BuildFailedError('1 image failed to build.', []), capture().context, { showStack: false })).toBe(1);
  });

  it('a message or hint quoting hostile text (a daemon, a package\'s stderr) reaches the terminal without its escape sequences', () => {
    const c = capture();
    reportError(new ConfigError('The recording failed:\n  \x1b]0;owned\x07\x1b[2Jboom', { hint: 'stderr: \x1b[1A\rok' }), c.context, { showStack: false });
    reportError(new Error('\x1b[31mred'), c.context, { showStack: false });
    expect(c.err()).not.toMatch(/[\x1b\x07\r]/);
    // The message's own continuation line stays under it, indented once more: it cannot start a line of its own.
    expect(c.err()).toContain('error: The recording failed:\n    \\x1b]0;owned\\x07\\x1b[2Jboom\nhint: stderr: \\x1b[1A\\x0dok\n');
  });

  it("never shows a URL's credentials an error quotes (a setting's value: a URL with its token put in the wrong setting), on stderr, in --json, nor in the --verbose stack", () => {
    const error = new ConfigError("METAFLOW_PREBUILT_NETWORK_DEADLINE='https://ci:glpat-s3cr3t@git.example/x?private_token=tok-s3cr3t' is not a number of seconds.", {
      hint: 'Did you mean https://ci:glpat-s3cr3t@git.example?',
      cause: new Error('from https://u:cause-s3cr3t@h.example/'),
    });
    const c = capture();
    c.context.json.requested = true;
    expect(reportError(error, c.context, { showStack: true })).toBe(2);
    reportError(new TypeError('fetch https://u:unexpected-s3cr3t@h.example/ failed'), c.context, { showStack: false });
    expect(`${c.out()}${c.err()}`).not.toMatch(/s3cr3t/);
    expect(c.err()).toContain("error: METAFLOW_PREBUILT_NETWORK_DEADLINE='https://***@git.example/x?private_token=***' is not a number of seconds.\nhint: Did you mean https://***@git.example?\n");
    expect(JSON.parse(c.out()).error.message).toBe("METAFLOW_PREBUILT_NETWORK_DEADLINE='https://***@git.example/x?private_token=***' is not a number of seconds.");
    expect(c.err()).toContain('error: fetch https://***@h.example/ failed\n');
  });

  it('maps commander exits: help/version 0, usage errors 2', () => {
    const c = capture();
    expect(reportError(new CommanderError(0, 'commander.helpDisplayed', ''), c.context, { showStack: false })).toBe(0);
    expect(reportError(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"), c.context, { showStack: false })).toBe(2);
    expect(c.err()).toBe('');
  });

  it('treats anything else as unexpected: exit 1, a hint to use --verbose, no stack', () => {
    const c = capture();
    expect(reportError(new TypeError('x is not a function'), c.context, { showStack: false })).toBe(1);
    expect(c.err()).toBe('error: x is not a function\nhint: this is unexpected; run again with --verbose for the stack trace and report it.\n');
  });

  it('shows the stack and the cause chain when asked', () => {
    const c = capture();
    const error = new ConfigError('outer', { cause: new Error('inner cause') });
    reportError(error, c.context, { showStack: true });
    expect(c.err()).toMatch(/^error: outer\nConfigError: outer\n\s+at /);
    expect(c.err()).toContain('caused by: Error: inner cause');
  });

  it('the stack shown with --verbose quotes a hostile message and cause (a registry\'s error body) without their escape sequences', () => {
    const c = capture();
    const error = new ConfigError('registry said: \x1b]8;;https://evil.example/\x07click\x1b]8;;\x07', { cause: new Error('\x1b[2J\x1b[Hbuild ok\r\u202e') });
    reportError(error, c.context, { showStack: true });
    expect(c.err()).not.toMatch(/[\x07\x1b\r\u202e]/);
    expect(c.err()).toContain('ConfigError: registry said: \\x1b]8;;https://evil.example/\\x07click');
    expect(c.err()).toContain('caused by: Error: \\x1b[2J\\x1b[Hbuild ok\\x0d\\u202e');
  });

  it('keeps stdout to one JSON object in --json mode', () => {
    const c = capture();
    c.context.json.requested = true;
    reportError(new ConfigError('bad', { hint: 'fix it' }), c.context, { showStack: false });
    expect(JSON.parse(c.out())).toEqual({ ok: false, error: { name: 'ConfigError', code: 'config', message: 'bad', hint: 'fix it' } });
    const written = capture();
    written.context.json = { requested: true, written: true };
    reportError(new ConfigError('bad'), written.context, { showStack: false });
    expect(written.out()).toBe('');
  });

  it('reports interrupts as 130 (SIGINT) and 143 (SIGTERM)', () => {
    const c = capture();
    expect(reportError(new CancelledError('Interrupted by SIGINT.', { signal: 'SIGINT' }), c.context, { showStack: false, interrupted: 'SIGINT' })).toBe(130);
    expect(reportError(new Error('aborted'), c.context, { showStack: false, interrupted: 'SIGTERM' })).toBe(143);
    expect(c.err()).toBe('interrupted (SIGINT): prebuilt stopped. Run it again.\ninterrupted (SIGTERM): prebuilt stopped. Run it again.\n');
  });

  it('an interrupt says in one line what stopped, that nothing was left half-written, and how to go on, per command', () => {
    const c = capture();
    expect(reportError(new Error('aborted'), c.context, { showStack: false, interrupted: 'SIGINT', command: 'build' })).toBe(130);
    expect(c.err()).toBe(
      'interrupted (SIGINT): prebuilt build stopped. Nothing was left half-written (the lock file and the image map are replaced whole or not at all). ' +
        'Run it again: the images already pushed and the packages already downloaded are reused.\n',
    );
    expect(interruptedReport('SIGINT', 'lock').line).toBe('interrupted (SIGINT): prebuilt lock stopped. The lock file was not touched: it is replaced whole, once the resolution is done. Run it again.\n');
    expect(interruptedReport('SIGINT', 'run').hint).toContain('prebuilt run <flow> resume');
    expect(interruptedReport('SIGTERM', 'gc').line).toMatch(/^interrupted \(SIGTERM\): prebuilt gc stopped\. Only the images it had already deleted \(--yes\) are gone; every other image is intact .*Run it again: it plans afresh/);
    for (const command of ['build', 'run', 'lock', 'gc', 'plan', undefined]) expect(interruptedReport('SIGINT', command).line.match(/\n/g)).toHaveLength(1);
  });

  it('still prints one JSON object in --json mode when interrupted', () => {
    const c = capture();
    c.context.json.requested = true;
    expect(reportError(new Error('aborted'), c.context, { showStack: false, interrupted: 'SIGINT', command: 'build' })).toBe(130);
    expect(JSON.parse(c.out())).toEqual({
      ok: false,
      interrupted: true,
      completed: false,
      error: { name: 'CancelledError', code: 'cancelled', message: 'prebuilt build was interrupted (SIGINT, Ctrl-C).', hint: expect.stringContaining('Run it again: the images already pushed') },
    });
  });

  it('an interrupted --json run whose command wrote its envelope (a build that failed mid-way): that envelope becomes the interrupted one, keeping what was done', () => {
    const c = capture();
    c.context.json.requested = true;
    c.context.json.held = { value: undefined };
    writeJsonResult(c.context, { images: ['a'], failures: [{ envId: 'b', error: 'cancelled' }] }, new BuildFailedError('1 image failed to build.', []));
    expect(c.out()).toBe('');
    expect(reportError(new BuildFailedError('1 image failed to build.', []), c.context, { showStack: false, interrupted: 'SIGTERM', command: 'build' })).toBe(143);
    releaseJson(c.context);
    expect(JSON.parse(c.out())).toEqual({
      ok: false,
      interrupted: true,
      completed: false,
      error: { name: 'CancelledError', code: 'cancelled', message: 'prebuilt build was interrupted (SIGTERM).', hint: expect.stringContaining('Nothing was left half-written') },
      images: ['a'],
      failures: [{ envId: 'b', error: 'cancelled' }],
    });
    expect(c.err()).toMatch(/^interrupted \(SIGTERM\): prebuilt build stopped\. /);
  });

  it('Ctrl-C while a --json command runs that finishes anyway: exit 130, one object with ok: false, interrupted and completed: true and its fields, never ok: true', async () => {
    let out = '';
    let err = '';
    let sent = false;
    // The SIGINT arrives while the command works (as it reads its setting), after the interrupt watch is set up.
    const env = new Proxy({} as Record<string, string | undefined>, {
      get(target, key) {
        if (key === 'METAFLOW_PREBUILT_BUILD_SERVICE' && !sent) {
          sent = true;
          process.emit('SIGINT');
        }
        return Reflect.get(target, key) as string | undefined;
      },
    });
    const code = await main(['backends', '--json'], { stdout: { write: (t: string) => ((out += t), true) }, stderr: { write: (t: string) => ((err += t), true) }, env });
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(out.trim().split('\n').filter((line) => line === '{')).toHaveLength(1);
    const json = JSON.parse(out) as Record<string, unknown>;
    expect(json).toMatchObject({
      ok: false,
      interrupted: true,
      completed: true,
      error: { code: 'cancelled', message: 'prebuilt backends was interrupted (SIGINT, Ctrl-C) after it had finished its work.', hint: expect.stringContaining('Its result stands') },
      selected: { buildService: { name: 'docker' } },
    });
    expect(json['backends']).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'docker' })]));
    expect(err).toBe('interrupted (SIGINT): prebuilt backends had finished its work when the interrupt came. Its result stands (nothing needs running again); the exit code says that an interrupt came.\n');
  });

  it('the envelope always has error.code, message and hint (null when the error has none), also for an unexpected error', () => {
    const plain = capture();
    plain.context.json.requested = true;
    expect(reportError(new ConfigError('no hint here'), plain.context, { showStack: false })).toBe(2);
    expect(JSON.parse(plain.out())).toEqual({ ok: false, error: { name: 'ConfigError', code: 'config', message: 'no hint here', hint: null } });
    const unexpected = capture();
    unexpected.context.json.requested = true;
    expect(reportError(new TypeError('x is undefined'), unexpected.context, { showStack: false })).toBe(1);
    expect(JSON.parse(unexpected.out())).toEqual({ ok: false, error: { name: 'Error', code: 'unexpected', message: 'x is undefined', hint: null } });
  });
});

describe('usage errors with --json', () => {
  async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(argv, { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: (text: string) => ((err += text), true) }, env: {} });
    return { code, out, err };
  }

  it.each([
    [['build', 'flow.py', '--bogus', '--json'], "unknown option '--bogus'"],
    [['biuld', 'flow.py', '--json'], "unknown command 'biuld'"],
    [['build', '--json'], "missing required argument 'flow'"],
    [['build', 'flow.py', '--json', '--workers'], "option '--workers <n>' argument missing"],
  ])('prebuilt %j: exit 2, commander\'s message on stderr, and one JSON object with code usage on stdout', async (argv, message) => {
    const { code, out, err } = await run(argv);
    expect(code).toBe(2);
    expect(err).toContain(`error: ${message}`);
    const json = JSON.parse(out) as { ok: boolean; error: { name: string; code: string; message: string; hint: string } };
    expect(json).toEqual({ ok: false, error: { name: 'UsageError', code: 'usage', message: expect.stringContaining(message), hint: expect.stringContaining('--help') } });
    expect(json.error.message).not.toMatch(/^error: /);
  });

  it('without --json stdout stays empty; after -- a --json is not prebuilt\'s', async () => {
    expect((await run(['build', 'flow.py', '--bogus'])).out).toBe('');
    expect((await run(['build', '--bogus', '--', '--json'])).out).toBe('');
  });
});

describe('the exit-code table: ExitCode / EXIT_CODE_MEANINGS, --help and the READMEs say the same', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  it.each(['README.md', 'packages/cli/README.md'])('%s has one row per exit code with its meaning', (readme) => {
    const text = readFileSync(join(root, readme), 'utf8');
    for (const [code, meaning] of Object.entries(EXIT_CODE_MEANINGS)) expect(text).toContain(`| ${code} | ${meaning} |`);
    expect(text).toContain('"ok": false, "error": { "name", "code", "message", "hint" }');
  });

  it('prebuilt --help prints the table', async () => {
    let out = '';
    const code = await main(['--help'], { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: () => true } });
    expect(code).toBe(0);
    for (const [exit, meaning] of Object.entries(EXIT_CODE_MEANINGS)) expect(out).toContain(`  ${exit.padEnd(4)}${meaning}`);
  });
});

