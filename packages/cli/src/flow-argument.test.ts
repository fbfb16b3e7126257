/**
 * Every command whose first argument is the flow checks that file before anything else: with the
 * default settings (Docker Hub, no namespace, no login) a misspelt path is what the user is told about.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCliContext } from './cli-context.js';
import { createProgram, main } from './main.js';

/** The command paths (`['metaflow', 'build']`) whose first argument is named flow, with their mandatory options. */
function flowCommands(command: Command, path: string[] = []): { path: string[]; required: string[] }[] {
  const found = command.commands.flatMap((sub) => flowCommands(sub, [...path, sub.name()]));
  if (command.registeredArguments[0]?.name() !== 'flow') return found;
  const required = command.options.filter((option) => option.mandatory).flatMap((option) => [option.long!, 'x']);
  return [{ path, required }, ...found];
}

describe('a misspelt flow path is reported first', () => {
  let dir: string;
  let commands: { path: string[]; required: string[] }[];
  let program: Command;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-flow-arg-'));
    await mkdir(join(dir, 'flows.py'));
    program = await createProgram(createCliContext(new AbortController().signal, { env: {} }));
    commands = flowCommands(program);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const env = { HOME: dir, DOCKER_CONFIG: join(dir, '.docker'), PATH: process.env['PATH'] };
    const code = await main(args, {
      cwd: dir,
      env,
      stdout: { write: (text: string) => ((out += text), true) },
      stderr: { write: (text: string) => ((err += text), true) },
    });
    return { code, out, err };
  }

  it('finds the commands that take a flow', () => {
    expect(commands.map((c) => c.path.join(' '))).toEqual(expect.arrayContaining(['build', 'plan', 'lock', 'envs', 'profile', 'run', 'sbom', 'report', 'prepull']));
  });

  it('each of them exits 2 naming the missing file, before any setting is read', async () => {
    for (const { path, required } of commands) {
      const result = await run([...path, 'flw.py', ...required]);
      expect({ command: path.join(' '), code: result.code, err: result.err }).toEqual({
        command: path.join(' '),
        code: 2,
        err: `error: Flow file flw.py does not exist (${join(dir, 'flw.py')}).\nhint: Check the path; relative paths are resolved against the current directory.\n`,
      });
    }
  });

  it('a missing flow file one typo away from a .py file beside it names that file', async () => {
    await mkdir(join(dir, 'flows'));
    await writeFile(join(dir, 'flows', 'train_flow.py'), '');
    const result = await run(['envs', 'flows/trian_flow.py']);
    expect(result.code).toBe(2);
    expect(result.err).toBe(
      `error: Flow file flows/trian_flow.py does not exist (${join(dir, 'flows', 'trian_flow.py')}).\n` +
        'hint: Did you mean flows/train_flow.py? Check the path; relative paths are resolved against the current directory.\n',
    );
    // Nothing close: no guess.
    expect((await run(['envs', 'flows/other.py'])).err).toContain('\nhint: Check the path;');
  });

  it('--frozen with --update is exit 2 before anything is printed or the flow read, in every command that takes both', async () => {
    // A flow python cannot read: any work on it would fail differently (or print "reading the flow…" first).
    await writeFile(join(dir, 'broken_flow.py'), 'this is not python(\n');
    const both = commands.filter(({ path }) => {
      const options = path.reduce<Command | undefined>((at, name) => at?.commands.find((sub) => sub.name() === name), program)?.options ?? [];
      return options.some((option) => option.long === '--frozen') && options.some((option) => option.long === '--update');
    });
    expect(both.map(({ path }) => path.join(' ')).sort()).toEqual(['build', 'lock', 'plan']);
    for (const { path, required } of both) {
      const result = await run([...path, 'broken_flow.py', ...required, '--frozen', '--update']);
      expect({ command: path.join(' '), code: result.code, out: result.out, err: result.err }).toEqual({
        command: path.join(' '),
        code: 2,
        out: '',
        err: 'error: --frozen and --update cannot be used together.\nhint: Use --update to re-resolve the lock, or --frozen to require it to be up to date.\n',
      });
    }
  });

  it('a directory is not a flow file; --json still prints the envelope', async () => {
    const result = await run(['build', 'flows.py', '--json']);
    expect(result.code).toBe(2);
    expect(result.err).toContain('flows.py is not a file');
    expect(JSON.parse(result.out)).toMatchObject({ ok: false, error: { code: 'input', message: 'flows.py is not a file.' } });
  });
});
