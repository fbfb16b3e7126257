/**
 * A package's pycs derived as it is extracted (in the extraction worker, extract-worker.ts), not
 * by the main thread once the package is linked: the compiled and re-stamped pycs of a package
 * depend only on its own files, the env's prefix, the python version and the mtime, so the
 * worker can make them beside the package's files, as the derived set of its extraction-cache
 * entry (derived-files.ts) under the key the main thread's bytecode pass computes (bytecode.ts:
 * {@link packageKey}). The main thread then finds the set and only links it; the full build's
 * tail (sympy's 1,473 pycs settled alone after the last extraction) shrinks to linking.
 *
 * Ahead of the prefix, the worker assumes the package owns every path it installs (no later
 * package replaces its modules or pycs, no placeholder in them). Where that is not so in the
 * prefix, the main thread's key differs — it names each module's and pyc's state as installed —
 * and the set made here is never used: the pass derives the files as before. A package with a
 * module or pyc patched for its prefix (written, not linked) is left to the main thread.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { compareBytes, createLogger } from '@prebuilt/core';
import { derivedSetDir, storeDerivedFiles } from '../cache/derived-files.js';
import { cacheTagOf, compileFrames, linkedIdentity, linkedPycState, packageKey, pycPathOf, restampedCopy, type BytecodeCompiler } from './bytecode.js';
import type { ExtractedCondaPackage, ExtractedEntry } from './conda-extract.js';
import { linkLayout } from './conda-install.js';

const log = createLogger('conda:derive-ahead');

/** What deriving a package's pycs while it is extracted needs (plain data: it crosses to the worker). */
export interface DeriveRequest {
  /** The env's path in the image. */
  prefix: string;
  /** The env's python version, e.g. `3.11.2`. */
  pythonVersion: string;
  /** Seconds since 1970: every file's mtime. */
  mtime: number;
  /** The host python that compiles for the env (none: only packages with nothing to compile are derived). */
  compiler?: BytecodeCompiler;
  /** The compiler's identity, as the bytecode pass keys with it. */
  compilerId: string;
  /** The frames cache of compiled modules (bytecode.ts), when there is one. */
  cacheDir?: string;
  /** The extraction's scratch root and the entry directory it is renamed to (its files are linked into the prefix from there). */
  root: string;
  entryDir: string;
}

type FileEntry = Extract<ExtractedEntry, { type: 'file' }>;

/** The files a package links into the prefix, by their path there; undefined when one of its modules or pycs would be written instead (patched, or a hardlink's copy). */
function linkedFiles(contents: ExtractedCondaPackage, label: string, pythonVersion: string, libDir: string): Map<string, FileEntry> | undefined {
  const plan = linkLayout(contents.info, label, pythonVersion);
  const files = new Map<string, FileEntry>();
  for (const entry of contents.entries) {
    if (entry.type === 'directory' || entry.type === 'symlink') continue;
    const meta = plan.byPath.get(entry.path);
    if (plan.hasPathsList && !meta) continue;
    const target = plan.remap(entry.path);
    const written = entry.type === 'hardlink' || meta?.prefix_placeholder !== undefined;
    if (written && target.startsWith(libDir) && (target.endsWith('.py') || target.endsWith('.pyc'))) return undefined;
    if (written) files.delete(target);
    else files.set(target, entry as FileEntry);
  }
  return files;
}

/**
 * Derives the pycs of the package labelled `label` (extracted as `contents` under `request.root`)
 * into its entry's derived set; the number of pycs derived (0: nothing to derive, or left to the
 * main thread). Never fails the extraction: a failure is logged and the main thread derives.
 */
export async function deriveAhead(contents: ExtractedCondaPackage, label: string, request: DeriveRequest): Promise<number> {
  try {
    return await derive(contents, label, request);
  } catch (error) {
    log('pycs of %s not derived ahead: %s', label, (error as Error).message);
    return 0;
  }
}

async function derive(contents: ExtractedCondaPackage, label: string, request: DeriveRequest): Promise<number> {
  const { prefix, pythonVersion, mtime, compiler } = request;
  const [major, minor] = pythonVersion.split('.');
  const libDir = `lib/python${major}.${minor}/`;
  const cacheTag = cacheTagOf(pythonVersion);
  const files = linkedFiles(contents, label, pythonVersion, libDir);
  if (!files) return 0;
  // The file as the prefix will name it: a hard link to the entry's copy (same inode as the scratch file).
  const identity = (file: string): string => linkedIdentity(request.entryDir + file.slice(request.root.length), lstatSync(file));
  const restamp: { pyc: string; size: number; id: string; file: string }[] = [];
  const compile: { rel: string; id: string; file: string }[] = [];
  const sources = [...files.keys()].filter((rel) => rel.startsWith(libDir) && rel.endsWith('.py')).sort(compareBytes);
  for (const rel of sources) {
    const source = files.get(rel)!;
    const pyc = pycPathOf(rel, cacheTag);
    const pycFile = files.get(pyc);
    let state: ReturnType<typeof linkedPycState> | undefined;
    try {
      state = pycFile ? linkedPycState(pycFile.file, mtime, source.size) : undefined;
    } catch {
      state = undefined;
    }
    if (state === 'valid' || state === 'hash') continue;
    if (state === 'restamp') restamp.push({ pyc, size: source.size, id: identity(pycFile!.file), file: pycFile!.file });
    else compile.push({ rel, id: identity(source.file), file: source.file });
  }
  if (restamp.length + compile.length === 0 || (compile.length > 0 && !compiler)) return 0;
  // Re-stamped pycs do not depend on the compiler: a package with nothing to compile keys without it.
  const key = packageKey({ compilerId: compile.length > 0 ? request.compilerId : '', prefix, mtime }, restamp, compile);
  const compiled = compile.length > 0 ? await compileFrames(compiler!, compile.map((c): [string, string] => [c.file, `${prefix}/${c.rel}`]), mtime, request.cacheDir ? join(request.cacheDir, key) : undefined) : { pycs: [] };
  const data = [...restamp.map((r) => restampedCopy(r.file, mtime, r.size)), ...compiled.pycs];
  const stored = await storeDerivedFiles(derivedSetDir(request.root, key), data, mtime);
  return stored ? data.length : 0;
}
