import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { ConfigError } from './errors.js';

/** The search path when the environment has no PATH: the absolute directories `execvp` uses then. */
const DEFAULT_PATH = '/usr/bin:/bin';

export interface ProgramPathOptions {
  /** The environment whose PATH is searched: the one the program will run with. Default process.env. */
  env?: Record<string, string | undefined>;
  /** The setting that can name the program by its absolute path instead, for the error's hint. */
  setting?: string;
  /** The program in the user's words, for the error, e.g. `the docker command`. Default: its name. */
  what?: string;
}

/** Whether `file` is a regular file this process may execute. */
function executable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where a program is, found as a shell would but in PATH's absolute directories only: an empty or
 * relative PATH entry ('' as in a trailing ':', '.', 'bin') names the current directory or one below
 * it — a checked-out flow's, which anyone could have put a `docker`, `ssh` or `python3` in — and a
 * program found there would run with the user's credentials. Docker (Go's exec.LookPath since
 * 1.19) refuses programs found there too. `relative` is the first such entry that has it.
 */
export function searchPath(program: string, path: string | undefined): { path?: string; relative?: string; unexecutable?: string } {
  let relative: string | undefined;
  let unexecutable: string | undefined;
  for (const dir of (path ?? DEFAULT_PATH).split(delimiter)) {
    if (!isAbsolute(dir)) {
      relative ??= executable(join(dir || '.', program)) ? dir || '.' : undefined;
      continue;
    }
    const file = join(dir, program);
    if (executable(file)) return { path: file };
    unexecutable ??= isFile(file) ? file : undefined;
  }
  return { ...(relative === undefined ? {} : { relative }), ...(unexecutable === undefined ? {} : { unexecutable }) };
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The file to run for `command`, for every program prebuilt starts: a command that names a path
 * (it has a '/', e.g. a setting's absolute path) is used as given; a bare name is looked up in the
 * absolute directories of `env`'s PATH ({@link searchPath}; a file there it may not execute when
 * there is no other, so that running it fails with EACCES, as execvp's lookup reports it). Undefined
 * when no such directory has it (the caller says the program is missing, see {@link programNotFound}); a ConfigError (exit 2)
 * when it is found only through an empty or relative PATH entry: prebuilt does not run it from there.
 */
export function programPath(command: string, options: ProgramPathOptions = {}): string | undefined {
  if (command.includes('/')) return command;
  const env = options.env ?? process.env;
  const found = searchPath(command, env['PATH']);
  if (found.path !== undefined) return found.path;
  if (found.relative !== undefined) throw relativePathOnly(command, found.relative, options);
  // A file of that name it may not execute: run, it fails with EACCES, as a shell's lookup reports it.
  return found.unexecutable;
}

/** The error a spawn of a missing program gives (ENOENT), for a caller that reports it as it reports spawn's. */
export function programNotFound(command: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`spawn ${command} ENOENT`), { code: 'ENOENT', errno: -2, syscall: `spawn ${command}`, path: command });
}

/**
 * The ConfigError (exit 2) for `command` found only in `dir`, an empty or relative PATH entry (see
 * {@link searchPath}): prebuilt does not run it from there; the hint says how to fix PATH.
 */
export function relativePathOnly(command: string, dir: string, options: Omit<ProgramPathOptions, 'env'> = {}): ConfigError {
  const what = options.what ?? `'${command}'`;
  const instead = options.setting ? `, or set ${options.setting} to its absolute path` : '';
  return new ConfigError(
    `${what} was found only in '${dir}', a PATH entry relative to the current directory; prebuilt does not run programs from there (anyone who wrote the current directory could have put a '${command}' in it).`,
    {
      ...(options.setting ? { setting: options.setting } : {}),
      hint: `Install ${command} into a directory PATH names by an absolute path${instead}, and remove the empty or relative entry from PATH (an empty one, as in a leading or trailing ':' or '::', means the current directory).`,
    },
  );
}
