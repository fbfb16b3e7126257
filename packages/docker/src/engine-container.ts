import type { Duplex, Readable } from 'node:stream';
import type { EngineClient } from './engine-client.js';

/** The fields of `POST /containers/create` that prebuilt sets (the Engine API's names). */
export interface ContainerSpec {
  Image: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  NetworkDisabled: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  OpenStdin: boolean;
  Labels: Record<string, string>;
  HostConfig: {
    NetworkMode: string;
    AutoRemove: boolean;
    Binds: string[];
    Mounts: unknown[];
    CapDrop: string[];
    SecurityOpt: string[];
    PidsLimit: number;
    Privileged: boolean;
    LogConfig: { Type: string; Config: Record<string, string> };
  };
}

/**
 * A container of the daemon, by id: the calls of a run (attach, start, wait, kill, remove) through
 * the Engine API client, each timed by it (engine-clock.ts) and stopped by `signal`.
 */
export class EngineContainer {
  private constructor(
    private readonly client: EngineClient,
    readonly id: string,
  ) {}

  /** `POST /containers/create`. */
  static async create(client: EngineClient, spec: ContainerSpec, signal?: AbortSignal): Promise<EngineContainer> {
    const created = await client.json<{ Id?: unknown }>({ method: 'POST', path: '/containers/create', body: spec, signal });
    if (typeof created?.Id !== 'string') throw new Error('the Docker daemon created a container without saying its id');
    return new EngineContainer(client, created.Id);
  }

  /** The container's stdout and stderr, multiplexed (see stream-demux.ts), over a hijacked connection. */
  attach(signal?: AbortSignal): Promise<Duplex | Readable> {
    return this.client.hijack({ method: 'POST', path: `${this.#path}/attach`, query: { stream: 1, stdout: 1, stderr: 1 }, signal });
  }

  async start(signal?: AbortSignal): Promise<void> {
    await this.client.json({ method: 'POST', path: `${this.#path}/start`, signal });
  }

  /**
   * Waits for the container to exit (`next-exit`) or to be removed (`removed`). The daemon sends
   * the headers at once and the answer when the container exits: no silence limit on it, the
   * caller bounds it with `signal` (a run's time limit).
   */
  wait(condition: 'next-exit' | 'removed', signal?: AbortSignal): Promise<{ StatusCode: number }> {
    return this.client.json({ method: 'POST', path: `${this.#path}/wait`, query: { condition }, signal, silence: 'open' });
  }

  async kill(signal?: AbortSignal): Promise<void> {
    await this.client.json({ method: 'POST', path: `${this.#path}/kill`, signal });
  }

  async remove(signal?: AbortSignal): Promise<void> {
    await this.client.json({ method: 'DELETE', path: this.#path, query: { force: true }, signal });
  }

  get #path(): string {
    return `/containers/${encodeURIComponent(this.id)}`;
  }
}
