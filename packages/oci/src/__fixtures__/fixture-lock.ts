import type { LockedEnv, LockedPackage } from '@prebuilt/core';
import type { FixtureServer, GeneratedFixtures } from '@prebuilt/fixtures';

const byName = (a: LockedPackage, b: LockedPackage): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A lock over fixture artifacts served by the fixture server (channel `main`, index `main`). */
export function fixtureLock(
  fixtures: GeneratedFixtures,
  server: FixtureServer,
  pick: { conda: readonly string[]; wheels: readonly string[] },
  options: { pythonVersion?: string; pypiRequested?: readonly string[]; condaRequested?: readonly string[] } = {},
): LockedEnv {
  const channelUrl = server.channelUrls.main!;
  const conda = pick.conda.map((filename): LockedPackage => {
    const a = fixtures.channel.artifacts.find((x) => x.filename === filename);
    if (!a) throw new Error(`no fixture conda artifact ${filename}`);
    return {
      kind: 'conda',
      name: a.record.name,
      version: a.record.version,
      build: a.record.build,
      url: `${channelUrl}/${a.subdir}/${a.filename}`,
      sha256: a.record.sha256,
      size: a.record.size,
      filename: a.filename,
      subdir: a.subdir,
    };
  });
  const wheels = pick.wheels.map((filename): LockedPackage => {
    const w = fixtures.index.wheels.find((x) => x.filename === filename);
    if (!w) throw new Error(`no fixture wheel ${filename}`);
    return { kind: 'pypi', name: w.project, version: w.version, build: '', url: `${server.url}/pypi/main/files/${w.filename}`, sha256: w.sha256, size: w.bytes.length, filename: w.filename };
  });
  return {
    specHash: 'fixture',
    request: {
      python: '3.11',
      conda: Object.fromEntries((options.condaRequested ?? []).map((n) => [n, ''])),
      pypi: Object.fromEntries((options.pypiRequested ?? []).map((n) => [n, ''])),
      channels: [channelUrl],
      indexUrl: server.indexUrls.main ?? null,
      platform: 'linux-64',
    },
    platform: 'linux-64',
    pythonVersion: options.pythonVersion ?? '3.11.2',
    packages: [...conda.sort(byName), ...wheels.sort(byName)],
  };
}
