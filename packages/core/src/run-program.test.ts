import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BoundedOutput, ProgramRunError, runProgram } from './run-program.js';

const env = { PATH: process.env['PATH'] };

describe('BoundedOutput', () => {
  it('keeps everything when it fits, and counts the bytes', () => {
    const output = new BoundedOutput({ head: 4, tail: 4 });
    output.push(Buffer.from('abc\n'));
    output.push(Buffer.from('de\n'));
    expect(output.result()).toEqual({ text: 'abc\nde\n', bytes: 7, cut: false });
  });

  it('keeps whole lines of the head and the tail, and says how many bytes were cut between them', () => {
    const output = new BoundedOutput({ head: 6, tail: 6 });
    for (const line of ['one\n', 'two\n', 'three\n', 'four\n', 'five\n']) output.push(Buffer.from(line));
    const { text, bytes, cut } = output.result();
    expect(bytes).toBe(24);
    expect(cut).toBe(true);
    // head 'one\ntw' → 'one\n'; tail '\nfive\n' → 'five\n' (its first line is a part: after 'r')
    expect(text).toBe('one\n[… 15 bytes of output cut …]\nfive\n');
  });

  it('holds about its tail however much is pushed, in chunks of any size', () => {
    const output = new BoundedOutput({ tail: 10 });
    for (let i = 0; i < 10_000; i++) output.push(Buffer.from(`line ${i}\n`));
    const { text, cut } = output.result();
    expect(cut).toBe(true);
    expect(text.endsWith('line 9999\n')).toBe(true);
    expect(text).not.toContain('line 9998');
  });
});

describe('runProgram', () => {
  it('runs without a shell, with only the environment given, stdin written, and reports the exit', async () => {
    const result = await runProgram('/bin/sh', ['-c', 'cat; echo "[$ONLY][$HOME]"; echo err >&2; exit 3', '$(touch /nonexistent)'], {
      env: { ...env, ONLY: 'given' },
      input: 'from stdin\n',
    });
    expect(result.code).toBe(3);
    expect(result.stdout.text).toBe('from stdin\n[given][]\n');
    expect(result.stderr.text).toBe('err\n');
  });

  it('bounds a program that prints without end: 256 MiB kept to the tail asked for', async () => {
    const result = await runProgram('/bin/sh', ['-c', 'yes spam | head -c 268435456; echo; echo last'], { env, stdout: { tail: 1024 } });
    expect(result.code).toBe(0);
    expect(result.stdout.bytes).toBe(268435456 + 6);
    expect(result.stdout.cut).toBe(true);
    expect(result.stdout.text.length).toBeLessThan(1100);
    expect(result.stdout.text).toMatch(/^\[… \d+ bytes of output cut …\]\n(spam\n)+s\nlast\n$/);
  });

  it('merges stderr into stdout when asked', async () => {
    const result = await runProgram('/bin/sh', ['-c', 'echo out; echo err >&2'], { env, mergeStderr: true });
    expect(result.stdout.text.split('\n').sort()).toEqual(['', 'err', 'out']);
    expect(result.stderr.bytes).toBe(0);
  });

  it('kills a program past its timeout and rejects saying so', async () => {
    const started = Date.now();
    const error = await runProgram('/bin/sh', ['-c', 'exec sleep 30'], { env, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(ProgramRunError.isInstance(error)).toBe(true);
    expect((error as ProgramRunError).reason).toBe('timed-out');
    expect((error as ProgramRunError).message).toContain('did not finish within 200 ms');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('kills a program that ignores SIGTERM past its timeout, and rejects only once it is gone', async () => {
    // A python3 behind a wrapper that runs it as a child (not exec), or any program trapping SIGTERM,
    // outlived the rejection: the CLI printed its error, then waited on the program's pipes (a pip
    // reading a trickling index: for ever).
    const dir = await mkdtemp(join(tmpdir(), 'run-program-'));
    try {
      const pidFile = join(dir, 'pid');
      const started = Date.now();
      const error = await runProgram('/bin/sh', ['-c', `trap '' TERM; echo $$ > ${pidFile}; sleep 30 & wait; sleep 30`], { env, timeoutMs: 300 }).catch((e: unknown) => e);
      expect((error as ProgramRunError).reason).toBe('timed-out');
      const pid = Number(await readFile(pidFile, 'utf8'));
      expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops a program when its signal aborts, and rejects at once on an aborted signal', async () => {
    const abort = new AbortController();
    const running = runProgram('/bin/sh', ['-c', 'exec sleep 30'], { env, signal: abort.signal }).catch((e: unknown) => e);
    setTimeout(() => abort.abort(new Error('stop')), 100);
    const error = (await running) as ProgramRunError;
    expect(error.reason).toBe('cancelled');
    expect((error.cause as Error).message).toBe('stop');
    const again = (await runProgram('/bin/true', [], { env, signal: abort.signal }).catch((e: unknown) => e)) as ProgramRunError;
    expect(again.reason).toBe('cancelled');
  });

  it('rejects a program that cannot be started with its errno', async () => {
    const error = (await runProgram('/nonexistent/program', [], { env }).catch((e: unknown) => e)) as ProgramRunError;
    expect(ProgramRunError.isInstance(error)).toBe(true);
    expect(error.reason).toBe('not-started');
    expect(error.errno).toBe('ENOENT');
  });

  it('settles once the program has exited, though a child of it holds its output open', async () => {
    const started = Date.now();
    const result = await runProgram('/bin/sh', ['-c', 'echo answer; sleep 5 & exit 0'], { env });
    expect(result.code).toBe(0);
    expect(result.stdout.text).toBe('answer\n');
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});

/** Whether a process runs: not gone, nor a zombie waiting for a parent (this container's init may never reap it). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) if (!alive(pid)) return true;
  return !alive(pid);
}

async function pidIn(file: string): Promise<number> {
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (/^\d+\n$/.test(text)) return Number(text);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('runProgram: the program and its children, as one process group', () => {
  let dir = '';
  let pidFile = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'run-program-'));
    pidFile = join(dir, 'grandchild');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a cancelled program's child (a shell's `sleep 1000 &`) is stopped with it", async () => {
    const abort = new AbortController();
    const running = runProgram('/bin/sh', ['-c', `sleep 1000 & echo $! > ${pidFile}; wait`], { env, signal: abort.signal }).catch((e: unknown) => e);
    const grandchild = await pidIn(pidFile);
    expect(alive(grandchild)).toBe(true);
    abort.abort(new Error('Ctrl-C'));
    expect(((await running) as ProgramRunError).reason).toBe('cancelled');
    expect(await goneWithin(grandchild, 1_000), 'the sleep 1000 is gone').toBe(true);
  });

  it('a child that ignores SIGTERM and outlives the stopped program is SIGKILLed two seconds later', async () => {
    const error = await runProgram('/bin/sh', ['-c', `(trap '' TERM; exec sleep 1000) & echo $! > ${pidFile}; wait`], { env, timeoutMs: 300 }).catch((e: unknown) => e);
    expect((error as ProgramRunError).reason).toBe('timed-out');
    const grandchild = await pidIn(pidFile);
    expect(alive(grandchild), 'it ignored SIGTERM').toBe(true);
    expect(await goneWithin(grandchild, 4_000), 'SIGKILLed with its group').toBe(true);
  });

  it('when this process exits while a program runs (a second Ctrl-C), its group is SIGKILLed: no stray process', async () => {
    const dist = fileURLToPath(new URL('../dist/run-program.js', import.meta.url));
    const script =
      `import { runProgram } from ${JSON.stringify(dist)};` +
      `void runProgram('/bin/sh', ['-c', ${JSON.stringify(`sleep 1000 & echo $! > ${pidFile}; wait`)}], { env: { PATH: '/usr/bin:/bin' } }).catch(() => undefined);` +
      `const { existsSync } = await import('node:fs'); const wait = () => (existsSync(${JSON.stringify(pidFile)}) ? process.exit(130) : setTimeout(wait, 20)); wait();`;
    const run = (): void => void execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe', timeout: 20_000 });
    expect(run).toThrow(expect.objectContaining({ status: 130 }));
    const grandchild = await pidIn(pidFile);
    expect(await goneWithin(grandchild, 1_000), 'the sleep 1000 is gone').toBe(true);
  });
});
