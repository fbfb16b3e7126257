import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core';
import { metaflowDatastore, metaflowPins, metaflowSetting } from './pins.js';

const home = mkdtempSync(join(tmpdir(), 'prebuilt-mfhome-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const noConfig = { METAFLOW_HOME: join(home, 'absent') };

describe('metaflowPins', () => {
  it('adds requests under conda for a local datastore', () => {
    expect(metaflowPins({ usesPypi: false, disabled: false }, { env: noConfig })).toEqual({ conda: { requests: '>=2.21.0' }, pypi: {} });
  });
  it('adds boto3 for S3, under PyPI when the step uses @pypi', () => {
    const env = { ...noConfig, METAFLOW_DEFAULT_DATASTORE: 's3' };
    expect(metaflowPins({ usesPypi: true, disabled: false }, { env })).toEqual({
      conda: {},
      pypi: { requests: '>=2.21.0', boto3: '>=1.14.0' },
    });
  });
  it('adds the Artifact Registry keyring under conda for @pypi steps with Google credentials', () => {
    const env = { ...noConfig, GOOGLE_APPLICATION_CREDENTIALS: '/x.json' };
    expect(metaflowPins({ usesPypi: true, disabled: false }, { env, datastore: 'gs' }).conda).toEqual({
      'keyrings.google-artifactregistry-auth': '>=1.1.1',
    });
    expect(Object.keys(metaflowPins({ usesPypi: true, disabled: false }, { env, datastore: 'gs' }).pypi)).toContain('google-cloud-storage');
  });
  it('adds nothing to a disabled step', () => {
    expect(metaflowPins({ usesPypi: false, disabled: true }, { env: noConfig })).toEqual({ conda: {}, pypi: {} });
  });
});

describe('metaflowDatastore', () => {
  it('reads the Metaflow config file, per profile', () => {
    writeFileSync(join(home, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: 'azure' }));
    writeFileSync(join(home, 'config_prod.json'), JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: 's3' }));
    expect(metaflowDatastore({ env: { METAFLOW_HOME: home } })).toBe('azure');
    expect(metaflowDatastore({ env: { METAFLOW_HOME: home, METAFLOW_PROFILE: 'prod' } })).toBe('s3');
    expect(metaflowDatastore({ env: { METAFLOW_HOME: home, METAFLOW_DEFAULT_DATASTORE: 'local' } })).toBe('local');
  });
  it('defaults to local, and refuses unknown datastores and missing profiles', () => {
    expect(metaflowDatastore({ env: noConfig })).toBe('local');
    expect(() => metaflowDatastore({ env: { ...noConfig, METAFLOW_DEFAULT_DATASTORE: 'ftp' } })).toThrow(ConfigError);
    expect(() => metaflowDatastore({ env: { METAFLOW_HOME: home, METAFLOW_PROFILE: 'nope' } })).toThrow(/profile 'nope'/);
  });
});

describe('metaflowSetting', () => {
  it('reads the configuration file once while it stays the same, and again once it changes', () => {
    const dir = join(home, 'once');
    mkdirSync(dir);
    const file = join(dir, 'config.json');
    const env = { METAFLOW_HOME: dir };
    const at = 1_700_000_000;
    writeFileSync(file, JSON.stringify({ METAFLOW_KUBERNETES_NAMESPACE: 'aaa' }));
    utimesSync(file, at, at);
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', env)).toEqual({ value: 'aaa', source: file });
    // Other bytes of the same size under the same mtime (and inode): not read again.
    writeFileSync(file, JSON.stringify({ METAFLOW_KUBERNETES_NAMESPACE: 'bbb' }));
    utimesSync(file, at, at);
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', env)?.value).toBe('aaa');
    // A changed file is read again; the environment still comes first.
    writeFileSync(file, JSON.stringify({ METAFLOW_KUBERNETES_NAMESPACE: 'team' }));
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', env)?.value).toBe('team');
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', { ...env, METAFLOW_KUBERNETES_NAMESPACE: 'env' })).toEqual({ value: 'env', source: 'METAFLOW_KUBERNETES_NAMESPACE' });
    rmSync(file);
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', env)).toBeUndefined();
  });

  it("takes a value set empty as a value, as Metaflow's os.environ.get(name, <file's>): an empty variable turns the files' off, an empty project key the global file's", () => {
    const dir = join(home, 'empty-values');
    const project = join(dir, 'project');
    mkdirSync(join(project, '.metaflow'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ METAFLOW_KUBERNETES_NODE_SELECTOR: 'pool=global', METAFLOW_DEFAULT_DATASTORE: 's3' }));
    const env = { METAFLOW_HOME: dir };
    expect(metaflowSetting('METAFLOW_KUBERNETES_NODE_SELECTOR', env, project)).toEqual({ value: 'pool=global', source: join(dir, 'config.json') });
    expect(metaflowSetting('METAFLOW_KUBERNETES_NODE_SELECTOR', { ...env, METAFLOW_KUBERNETES_NODE_SELECTOR: '' }, project)).toEqual({ value: '', source: 'METAFLOW_KUBERNETES_NODE_SELECTOR' });
    const local = join(project, '.metaflow', 'config.json');
    writeFileSync(local, JSON.stringify({ METAFLOW_KUBERNETES_NODE_SELECTOR: '' }));
    expect(metaflowSetting('METAFLOW_KUBERNETES_NODE_SELECTOR', env, project)).toEqual({ value: '', source: local });
    // Metaflow refuses an empty datastore (click: "invalid choice"): so does the lock, naming where it came from.
    expect(metaflowDatastore({ env, cwd: project })).toBe('s3');
    expect(() => metaflowDatastore({ env: { ...env, METAFLOW_DEFAULT_DATASTORE: '' }, cwd: project })).toThrow("Metaflow datastore '' (from METAFLOW_DEFAULT_DATASTORE) is not one of");
  });

  it('never reads a configuration that is not a file (a FIFO would hang the command) or is over 1 MiB', () => {
    const dir = join(home, 'odd');
    mkdirSync(dir);
    execFileSync('mkfifo', [join(dir, 'config.json'), join(dir, 'config_fifo.json')]);
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', { METAFLOW_HOME: dir })).toBeUndefined();
    expect(() => metaflowSetting('METAFLOW_DEFAULT_DATASTORE', { METAFLOW_HOME: dir, METAFLOW_PROFILE: 'fifo' })).toThrow(/^Metaflow profile 'fifo' has no configuration file .*config_fifo\.json: it is a FIFO, not a file\.$/);
    writeFileSync(join(dir, 'config_big.json'), Buffer.alloc(1024 * 1024 + 1, 0x20));
    const big = (() => { try { metaflowSetting('METAFLOW_DEFAULT_DATASTORE', { METAFLOW_HOME: dir, METAFLOW_PROFILE: 'big' }); } catch (e) { return e; } return undefined; })();
    expect(big).toBeInstanceOf(ConfigError);
    expect((big as ConfigError).message).toMatch(/config_big\.json is 1048577 bytes; prebuilt reads one of at most 1048576 bytes\.$/);
  });
  it("reads the project's .metaflow/config.json (the nearest .metaflow directory up from the cwd) between the environment and the global file, as Metaflow's from_conf", () => {
    const dir = join(home, 'project-local');
    const globalHome = join(dir, 'home');
    const project = join(dir, 'project');
    const nested = join(project, 'flows', 'deep');
    mkdirSync(globalHome, { recursive: true });
    mkdirSync(nested, { recursive: true });
    writeFileSync(join(globalHome, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: 'gs', METAFLOW_KUBERNETES_NAMESPACE: 'global' }));
    const env = { METAFLOW_HOME: globalHome };
    // No .metaflow directory anywhere up: the global file.
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', env, nested)).toEqual({ value: 'gs', source: join(globalHome, 'config.json') });
    // A .metaflow directory without config.json (a local run's datastore): still the global file.
    mkdirSync(join(project, '.metaflow'));
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', env, nested)?.value).toBe('gs');
    // Its config.json wins over the global file, found from any directory below it; other keys fall through.
    const local = join(project, '.metaflow', 'config.json');
    writeFileSync(local, JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: 's3' }));
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', env, nested)).toEqual({ value: 's3', source: local });
    expect(metaflowDatastore({ env: { ...env }, cwd: nested })).toBe('s3');
    expect(metaflowSetting('METAFLOW_KUBERNETES_NAMESPACE', env, nested)?.value).toBe('global');
    // The environment still comes first; the nearest .metaflow directory stops the search.
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', { ...env, METAFLOW_DEFAULT_DATASTORE: 'azure' }, nested)?.value).toBe('azure');
    mkdirSync(join(nested, '.metaflow'));
    expect(metaflowSetting('METAFLOW_DEFAULT_DATASTORE', env, nested)?.value).toBe('gs');
    // A broken project file is a ConfigError naming it and what to do; no METAFLOW_HOME hint.
    writeFileSync(join(nested, '.metaflow', 'config.json'), '{');
    const broken = (() => { try { metaflowSetting('METAFLOW_DEFAULT_DATASTORE', env, nested); } catch (e) { return e; } return undefined; })() as ConfigError;
    expect(broken).toBeInstanceOf(ConfigError);
    expect(broken.message).toMatch(/flows\/deep\/\.metaflow\/config\.json is not valid JSON/);
    expect(broken.setting).toBeUndefined();
    expect(broken.hint).toMatch(/nearest \.metaflow directory/);
  });
});
