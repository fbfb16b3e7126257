import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS, commandsFor } from './command-table.js';
import { main } from './main.js';

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
  // The command modules, the backends and the heavy clients: Kubernetes' (client-node), the Docker
  // Engine API client (@prebuilt/docker's engine-client, wherever it is loaded from), rattler's solver.
  const heavy = /\/commands\/|@prebuilt\/(conda|metaflow|local|docker|oci)\b|packages\/(conda|metaflow|local|docker|oci)\/|client-node|engine-client|rattler/;

  it('prebuilt --version prints the version and loads no command module, resolver, flow reader or backend', () => {
    const r = loaded(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.urls.length).toBeGreaterThan(0);
    expect(r.urls.filter((u) => heavy.test(u))).toEqual([]);
  });

  // The backend packages (first-party ones; third-party ones are named prebuilt-backend-*).
  const backend = /@prebuilt\/(docker|oci|buildx|kaniko|codebuild|local|dockerhub|ecr|gcr)\b|packages\/(docker|oci|buildx|kaniko|codebuild|local|dockerhub|ecr|gcr)\/|prebuilt-backend-/;

  it('prebuilt --help lists every command and loads no backend package', () => {
    const r = loaded(['--help']);
    expect(r.status).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(r.stdout).toContain(`  ${name}`);
    expect(r.urls.filter((u) => u.includes('/commands/')).length).toBe(Object.keys(COMMANDS).length);
    expect(r.urls.filter((u) => backend.test(u))).toEqual([]);
  });

  it('prebuilt envs <flow> reads the flow and loads no backend package', () => {
    const flow = join(temp, 'flow.py');
    writeFileSync(flow, "from metaflow import FlowSpec, step\n\nclass F(FlowSpec):\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n");
    const r = loaded(['envs', flow, '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, flow: 'F' });
    expect(r.urls.filter((u) => backend.test(u))).toEqual([]);
  });

  it('prebuilt envs --help loads the envs command and not the others (nor the Kubernetes client)', () => {
    const r = loaded(['envs', '--help']);
    expect(r.status).toBe(0);
    const commands = r.urls.filter((u) => u.includes('/commands/')).map((u) => u.replace(/.*\/commands\//, ''));
    expect([...new Set(commands)]).toEqual(['envs.js']);
    expect(r.urls.filter((u) => /client-node|rattler|engine-client/.test(u))).toEqual([]);
  });
});

/** The specifiers in `text` that name a command module (a sibling `./x.js` or a path through `commands/`). */
function commandImports(text: string): string[] {
  // Static imports, re-exports and dynamic imports alike.
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((match) => match[1]!);
  return specifiers.filter((specifier) => specifier.startsWith('./') || /(^|\/)commands\//.test(specifier));
}

describe('commands are leaves: no command imports another', () => {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'commands');
  const sources = readdirSync(dir).filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'));

  it('every module in commands/ imports only from outside commands/ (shared code lives in app/ and the renderers)', () => {
    expect(sources.length).toBe(Object.keys(COMMANDS).length);
    const offending: string[] = [];
    for (const name of sources) {
      for (const specifier of commandImports(readFileSync(join(dir, name), 'utf8'))) offending.push(`${name} → ${specifier}`);
    }
    expect(offending).toEqual([]);
  });

  it('the scan sees an import of a sibling command (it would fail on one)', () => {
    const text = "import { reportBuild } from './build.js';\nconst m = await import('../commands/lock.js');";
    expect(commandImports(`${text}\nimport { writeJson } from '../output.js';`)).toEqual(['./build.js', '../commands/lock.js']);
  });
});

describe('internal commands are hidden from --help', () => {
  it('metaflow build (the extension\'s entry) is not listed, yet runs and has its own --help', async () => {
    const run = async (args: string[]): Promise<{ code: number; out: string }> => {
      let out = '';
      const code = await main(args, { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: () => true } });
      return { code, out };
    };
    const listing = await run(['metaflow', '--help']);
    expect(listing.code).toBe(0);
    expect(listing.out).toMatch(/^ {2}install /m);
    expect(listing.out).not.toMatch(/^ {2}build /m);
    const own = await run(['metaflow', 'build', '--help']);
    expect(own.code).toBe(0);
    expect(own.out).toContain('Usage: prebuilt metaflow build [options] <flow>');
  });
});

describe('prebuilt help <name>', () => {
  const run = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await main(args, { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: (text: string) => ((err += text), true) }, env: {} });
    return { code, out, err };
  };

  it.each([
    [['help', 'biuld'], "error: unknown command 'biuld'\n(Did you mean build?)"],
    [['help', 'nosuch'], "error: unknown command 'nosuch'"],
    [['--verbose', 'help', 'nosuch'], "error: unknown command 'nosuch'"],
    [['metaflow', 'help', 'instal'], "error: unknown command 'instal'\n(Did you mean install?)"],
    [['local-registry', 'help', 'nosuch'], "error: unknown command 'nosuch'"],
  ])('%j: exit 2 saying the command is unknown (with the nearest name), not the whole help', async (argv, message) => {
    const { code, out, err } = await run(argv);
    expect(code).toBe(2);
    expect(err.startsWith(message)).toBe(true);
    expect(err).not.toContain('Usage:');
    expect(out).toBe('');
  });

  it('a known name or none still prints the help, exit 0', async () => {
    const build = await run(['help', 'build']);
    expect(build.code).toBe(0);
    expect(build.out).toContain('Usage: prebuilt build [options] <flow>');
    const install = await run(['metaflow', 'help', 'install']);
    expect(install.code).toBe(0);
    expect(install.out).toContain('Usage: prebuilt metaflow install [options]');
    const bare = await run(['help']);
    expect(bare.code).toBe(0);
    expect(bare.out).toContain('Usage: prebuilt [options] [command]');
  });
});
