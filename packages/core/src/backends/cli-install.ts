import { resolve, sep } from 'node:path';

/**
 * How the prebuilt CLI at `cliDir` is installed, seen from `cwd`: `project` when it lies in the
 * `node_modules` of `cwd` or of a directory above it (the first `node_modules` of its path: pnpm's
 * `.pnpm/…/node_modules` is inside it) (`npm i -D metaflow-prebuilt`; run from any
 * directory of that project), or in no `node_modules` at all (a clone of prebuilt's repository);
 * `global` otherwise (`npm i -g metaflow-prebuilt`: `<prefix>/lib/node_modules/metaflow-prebuilt`,
 * which no project directory is below).
 */
export function cliInstallKind(cliDir: string, cwd: string): 'global' | 'project' {
  const dir = resolve(cliDir);
  const at = dir.indexOf(`${sep}node_modules${sep}`);
  if (at === -1) return 'project';
  const root = dir.slice(0, at) || sep;
  const here = resolve(cwd);
  return here === root || here.startsWith(root.endsWith(sep) ? root : `${root}${sep}`) ? 'project' : 'global';
}

/**
 * The npm command that installs `packages` where the CLI at `cliDir` finds them: `npm i -g …`
 * beside a global CLI, `npm i -D …` in the project of a project's CLI.
 */
export function installCommand(packages: string, cliDir: string | undefined, cwd: string): string {
  return cliDir !== undefined && cliInstallKind(cliDir, cwd) === 'global' ? `npm i -g ${packages}` : `npm i -D ${packages}`;
}
