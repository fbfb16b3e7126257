// Which Docker Engines of the test services pull zstd layers, and the tests that show it: the test
// services run Debian bookworm's Docker 20.10 (cannot pull zstd) and, beside it, a modern Docker 26
// from Debian trixie (`modernDocker` in services.json, pulls zstd since Engine 23.0), once with the
// overlay2 graphdriver and once with the containerd image store (`containerdStoreDocker`).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { itOrFailInCi, missingFor, services, skipTitle } from './services.js';

const exec = promisify(execFile);

/** A Docker daemon of the test services: its DOCKER_HOST and server version. */
export interface TestDocker {
  host: string;
  version: string;
  /** It keeps its images in the containerd image store (no graphdriver). */
  containerdStore?: boolean;
}

/** The daemon that cannot (< 23.0) pull zstd, those that can (≥ 23.0: graphdriver, containerd image store), or why there is none here. */
export interface ZstdDockers {
  cannot: TestDocker | string;
  can: (TestDocker | string)[];
  /**
   * Every daemon of the test services answered: a kind none of them is, is one their Engines are not
   * (its test skips saying why, in CI too), not a missing service (its test fails in CI).
   */
  allAnswered: boolean;
}

const major = (version: string): number => Number(/^(\d+)/.exec(version)?.[1]);

async function serverVersion(host: string): Promise<string | undefined> {
  return exec('docker', ['version', '--format', '{{.Server.Version}}'], { env: { ...process.env, DOCKER_HOST: host }, timeout: 10_000 }).then(
    ({ stdout }) => stdout.trim() || undefined,
    () => undefined,
  );
}

/** Finds, among the test services' daemons, one older and one newer than Docker Engine 23.0. */
export async function zstdDockers(): Promise<ZstdDockers> {
  const daemons: TestDocker[] = [];
  const hosts = [
    { host: services.dockerHost, containerdStore: false },
    { host: services.modernDocker?.host, containerdStore: false },
    { host: services.containerdStoreDocker?.host, containerdStore: true },
  ];
  for (const { host, containerdStore } of hosts) {
    const version = host ? await serverVersion(host) : undefined;
    if (host && version) daemons.push({ host, version, containerdStore });
  }
  const absent = missingFor(['registries', 'baseImage', 'docker', 'modernDocker', 'containerdStoreDocker']);
  const none = (what: string): string => `no Docker Engine ${what} among the test services' daemons (${daemons.map((d) => d.version).join(', ') || 'none'})${absent ? `; ${absent}` : ''}`;
  return {
    allAnswered: daemons.length === hosts.length,
    cannot: daemons.find((d) => major(d.version) < 23) ?? none('< 23.0'),
    can: [
      daemons.find((d) => major(d.version) >= 23 && !d.containerdStore) ?? none('≥ 23.0'),
      daemons.find((d) => major(d.version) >= 23 && d.containerdStore) ?? none('≥ 23.0 with the containerd image store'),
    ],
  };
}

/**
 * `it` on `docker`; where there is none, skipped saying why when the test services are all there but
 * none of their Engines is of that kind, else by the CI rule (skipped saying why, in CI failing).
 */
function dockerIt(name: string, docker: TestDocker | string, allAnswered: boolean, body: () => Promise<void>, timeout: number): void {
  if (typeof docker !== 'string') it(name, body, timeout);
  else if (allAnswered) it.skip(skipTitle(name, docker), body, timeout);
  else itOrFailInCi(name, docker, body, timeout);
}
const versionOf = (docker: TestDocker | string): string =>
  typeof docker === 'string' ? '?' : `${docker.version}${docker.containerdStore ? ' with the containerd image store' : ''}`;

/**
 * The zstd image `image().tag` under Docker: an Engine < 23.0 fails to pull it; each Engine ≥ 23.0
 * pulls it and runs `image().command` in it with host networking, printing `image().prints`.
 */
export function dockerZstdTests(what: string, dockers: ZstdDockers, image: () => { tag: string; command: string[]; prints: string }): void {
  const { cannot, can, allAnswered } = dockers;
  dockerIt(
    `Docker Engine ${versionOf(cannot)} (< 23.0) cannot pull ${what}: docker pull fails at the zstd layer`,
    cannot,
    allAnswered,
    async () => {
      const env = { ...process.env, DOCKER_HOST: (cannot as TestDocker).host };
      const pulled = await exec('docker', ['pull', image().tag], { env, timeout: 300_000 }).then(
        () => undefined,
        (error: { stderr?: string }) => error.stderr ?? String(error),
      );
      await exec('docker', ['rmi', '-f', image().tag], { env }).catch(() => undefined);
      expect(pulled).toMatch(/failed to register layer|unsupported|zstd|media type/i);
    },
    600_000,
  );

  for (const docker of can) {
    dockerIt(
      `Docker Engine ${versionOf(docker)} (≥ 23.0) pulls ${what} and runs the env`,
      docker,
      allAnswered,
      async () => {
        const env = { ...process.env, DOCKER_HOST: (docker as TestDocker).host };
        await exec('docker', ['pull', image().tag], { env, timeout: 300_000 });
        try {
          const { stdout } = await exec('docker', ['run', '--rm', '--network=host', image().tag, ...image().command], { env, timeout: 120_000 });
          expect(stdout.trim()).toBe(image().prints);
        } finally {
          await exec('docker', ['rmi', '-f', image().tag], { env }).catch(() => undefined);
        }
      },
      600_000,
    );
  }
}
