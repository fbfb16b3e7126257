import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS, commandsFor } from './command-table.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'prebuilt.js');

describe('commandsFor: the command modules an invocation imports', () => {
  it('the named command alone, after program flags', () => {
    expect(commandsFor(['envs', 'flow.py'])).toEqual(['envs']);
    expect(commandsFor(['--verbose', 'pull-secret', '-n', 'x'])).toEqual(['pull-secret']);
  });

  it('none for --version / -V; every command for help, no command or an unknown one', () => {
    expect(commandsFor(['--version'])).toEqual([]);
    expect(commandsFor(['-V'])).toEqual([]);
    const all = Object.keys(COMMANDS);
    expect(commandsFor([])).toEqual(all);
    expect(commandsFor(['--help'])).toEqual(all);
    expect(commandsFor(['help', 'build'])).toEqual(all);
    expect(commandsFor(['biuld'])).toEqual(all);
  });
});

describe('start-up of the built CLI (module loads recorded by a resolve hook)', () => {
  const temp = mkdtempSync(join(tmpdir(), 'prebuilt-startup-'));
  afterAll(() => rmSync(temp, { recursive: true, force: true }));
  writeFileSync(
    join(temp, 'hook.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.PREBUILT_TEST_LOADED, result.url + '\\n');
  return result;
}
`,
  );
  writeFileSync(join(temp, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(temp, 'hook.mjs')).href)});\n`);

  function loaded(args: string[]): { status: number | null; stdout: string; urls: string[] } {
    const log = join(temp, `${args.join('_').replace(/\W/g, '')}.log`);
    writeFileSync(log, '');
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(temp, 'register.mjs')).href, BIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, PREBUILT_TEST_LOADED: log, DEBUG: '' },
    });
    return { status: r.status, stdout: r.stdout, urls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  }
  const heavy = /\/commands\/|@prebuilt\/(conda|metaflow|local|docker|oci)\b|packages\/(conda|metaflow|local|docker|oci)\/|client-node|dockerode|rattler/;

  it('prebuilt --version prints the version and loads no command module, resolver, flow reader or backend', () => {
    const r = loaded(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.urls.length).toBeGreaterThan(0);
    expect(r.urls.filter((u) => heavy.test(u))).toEqual([]);
  });

  it('prebuilt envs --help loads the envs command and not the others (nor the Kubernetes client)', () => {
    const r = loaded(['envs', '--help']);
    expect(r.status).toBe(0);
    const commands = r.urls.filter((u) => u.includes('/commands/')).map((u) => u.replace(/.*\/commands\//, ''));
    expect([...new Set(commands)]).toEqual(['envs.js']);
    expect(r.urls.filter((u) => /client-node|rattler|dockerode/.test(u))).toEqual([]);
  });
});
