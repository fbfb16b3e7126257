/**
 * `plan --help`, `build --help` and `gc --help` name every setting they read (`lock --help` those
 * of locking): each variable of the README's Configuration table, by name or under a prefix the
 * help lists (`METAFLOW_PREBUILT_OCI_*`).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LOCAL_ENV } from '@prebuilt/local';
import { main } from './main.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** The variables of the README's Configuration table (first column, one or two per row). */
function configurationVariables(): string[] {
  const text = readFileSync(README, 'utf8');
  const table = text.slice(text.indexOf('## Configuration'), text.indexOf('\n\n', text.indexOf('| variable |')));
  return [...table.matchAll(/^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|/gm)].flatMap((row) => row[1]!.split(', ').map((name) => name.slice(1, -1)));
}

async function helpOf(command: string): Promise<string> {
  let out = '';
  const code = await main([command, '--help'], { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: () => true }, env: {} });
  expect(code).toBe(0);
  return out;
}

/** Named in `help` by name, or under one of its `PREFIX*` entries. */
function named(help: string, variable: string): boolean {
  if (new RegExp(`\\b${variable}\\b`).test(help)) return true;
  return [...help.matchAll(/\b([A-Z_]+)\*/g)].some((match) => variable.startsWith(match[1]!));
}

/** Variables other commands read: prepull's pause image, gc's minimum age; the image map the Metaflow extension reads. */
const NOT_BUILD = ['METAFLOW_PREBUILT_PAUSE_IMAGE', 'METAFLOW_PREBUILT_GC_MIN_AGE', 'METAFLOW_PREBUILT_IMAGE_MAP'];
/** What only build reads: the image map and what goes into it, how many images at once, SBOMs. */
const BUILD_ONLY = [
  'METAFLOW_PREBUILT_BUILD_WORKERS',
  'METAFLOW_PREBUILT_STATE_FILE',
  'METAFLOW_PREBUILT_SBOM',
  'METAFLOW_PREBUILT_PULL_SECRET',
  'METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS',
];

/** What locking reads: the channels, the index, the targets, the cache and the network limits. */
const LOCKING = [
  'METAFLOW_PREBUILT_CONDA_CHANNELS',
  'METAFLOW_PREBUILT_PYPI_INDEX_URL',
  'METAFLOW_PREBUILT_PIP_ISOLATED',
  'METAFLOW_PREBUILT_PLATFORM',
  'METAFLOW_PREBUILT_GLIBC_VERSION',
  'METAFLOW_PREBUILT_DEFAULT_PYTHON',
  'METAFLOW_PREBUILT_CACHE_DIR',
  'METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT',
  'METAFLOW_PREBUILT_NETWORK_DEADLINE',
  'METAFLOW_PREBUILT_REPODATA_MAX_SIZE',
];

it('lock --help names every setting locking reads', async () => {
  const help = await helpOf('lock');
  expect(LOCKING.filter((variable) => !named(help, variable))).toEqual([]);
});

it("the README's Configuration table has every setting of the local registry (a self-hosted registry's users need _INSECURE too)", () => {
  const variables = configurationVariables();
  expect(Object.values(LOCAL_ENV).filter((variable) => !variables.includes(variable))).toEqual([]);
});

describe('plan, build and gc --help name every setting they read', () => {
  const variables = configurationVariables();

  it('reads the README table', () => {
    expect(variables.length).toBeGreaterThan(30);
    expect(variables).toContain('DOCKER_HOST');
    expect(variables).toContain('METAFLOW_PREBUILT_ECR_REGION');
  });

  it.each([
    ['build', NOT_BUILD],
    ['plan', [...NOT_BUILD, ...BUILD_ONLY]],
    // gc plans each flow given (plan --frozen) and reads its image map.
    ['gc', [...NOT_BUILD, ...BUILD_ONLY.filter((variable) => variable !== 'METAFLOW_PREBUILT_STATE_FILE')]],
  ])('%s --help', async (command, notRead) => {
    const help = await helpOf(command);
    const missing = variables.filter((variable) => !notRead.includes(variable) && !named(help, variable));
    expect(missing).toEqual([]);
  });
});
