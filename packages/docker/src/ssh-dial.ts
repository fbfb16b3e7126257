import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Agent } from 'node:http';
import { Duplex } from 'node:stream';
import { lastLines, programPath } from '@prebuilt/core/backend';

/** How much of ssh's stderr a failed connection's error quotes. */
const STDERR_TAIL = 2048;

/** What {@link dialSsh} needs: the ssh host, port and login of `ssh://user@host:port`. */
export interface SshTarget {
  host?: string;
  port?: number;
  username?: string;
}

/**
 * How long after ssh's own ConnectTimeout a still running ssh counts as connected: a connect that
 * timed out has made it exit by then (its 'close' comes a few milliseconds after).
 */
const SSH_CONNECT_GRACE_MS = 1000;

/**
 * The arguments of `ssh` for a Docker host, as the docker CLI runs it, with `connectTimeoutMs` as
 * ssh's ConnectTimeout (whole seconds, at least 1): the TCP connect and the server's greeting
 * within it, else ssh exits 255 saying why ("Connection timed out").
 */
export function sshArguments(target: SshTarget, connectTimeoutMs: number): string[] {
  return [
    '-o',
    `ConnectTimeout=${connectSeconds(connectTimeoutMs)}`,
    ...(target.port !== undefined && target.port !== 22 ? ['-p', String(target.port)] : []),
    ...(target.username ? ['-l', target.username] : []),
    '--',
    target.host ?? '',
    'docker',
    'system',
    'dial-stdio',
  ];
}

/** ssh's ConnectTimeout (whole seconds, at least 1) for a connect limit in milliseconds. */
function connectSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * A connection to the Docker daemon of an ssh host, as the docker CLI makes it: the local `ssh`
 * program runs `docker system dial-stdio` there, and its stdin/stdout are the connection (the
 * user's ssh configuration, keys and agent apply). One process per connection, killed when the
 * connection closes; an ssh that exits with an error fails the connection with its stderr.
 *
 * ssh says nothing when it has connected, so the stream is `connecting` (as a net.Socket is)
 * until its first byte or until ssh has outlived its ConnectTimeout (`connectTimeoutMs`) by
 * {@link SSH_CONNECT_GRACE_MS}: a host whose connect never completes is ssh's own exit (255,
 * "Connection timed out"), not a silent connection (engine-clock.ts leaves a connecting ssh
 * to it).
 *
 * `ssh` is the program's file ({@link sshProgram}); undefined: there is none, and the connection
 * fails saying so.
 */
function dialSsh(target: SshTarget, connectTimeoutMs: number, ssh: string | undefined = sshProgram()): Duplex {
  if (ssh === undefined) {
    const missing = new Duplex({ read: () => undefined, write: (_chunk, _encoding, done) => done() });
    process.nextTick(() => missing.destroy(new Error(`ssh to ${target.host ?? ''} cannot be started: there is no ssh program in PATH's directories (install an OpenSSH client)`)));
    return missing;
  }
  const child = spawn(ssh, sshArguments(target, connectTimeoutMs), { stdio: ['pipe', 'pipe', 'pipe'] });
  const stream = new SshStream(child, target.host ?? '');
  stream.connectingFor(connectSeconds(connectTimeoutMs) * 1000 + SSH_CONNECT_GRACE_MS);
  return stream;
}

/**
 * The ssh program for an ssh:// Docker host, from PATH's absolute directories (core's programPath):
 * a ConfigError when it is found only through an empty or relative entry (the current directory);
 * undefined when there is none.
 */
function sshProgram(env: Record<string, string | undefined> = process.env): string | undefined {
  return programPath('ssh', { env, what: "ssh (for DOCKER_HOST's ssh:// daemon)" });
}

/**
 * A keep-alive HTTP agent whose connections are {@link dialSsh} processes: the requests of a build
 * (check, build, push, remove) share one ssh connection instead of paying a handshake each.
 * `destroy()` ends them all.
 */
export class SshAgent extends Agent {
  /** The ssh program, looked up once (a ConfigError here when it is only in the current directory). */
  readonly #ssh = sshProgram();

  constructor(
    private readonly target: SshTarget,
    private readonly connectTimeoutMs: number,
  ) {
    super({ keepAlive: true });
  }

  override createConnection(): Duplex {
    return dialSsh(this.target, this.connectTimeoutMs, this.#ssh);
  }
}

class SshStream extends Duplex {
  #stderr = '';
  /** Not yet known to have connected (see dialSsh): what a net.Socket says while its connect is under way. */
  connecting = false;
  #connectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    host: string,
  ) {
    super({ allowHalfOpen: false }); // the daemon's end of the connection ends ours
    child.stdout.on('data', (chunk: Buffer) => {
      this.#connected();
      if (!this.push(chunk)) child.stdout.pause();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.stdin.on('error', () => undefined); // an exited ssh: its exit status says why
    child.on('error', (error) => this.destroy(new Error(`ssh to ${host} cannot be started: ${error.message}`)));
    // At 'close' (exited, its output read): the end of the connection, or why ssh failed.
    child.on('close', (code, signal) => {
      if (this.destroyed) return;
      if (code === 0) return void this.push(null);
      const why = lastLines(this.#stderr, 3, ' ');
      this.destroy(new Error(`ssh to ${host} exited with ${code ?? signal}${why ? `: ${why}` : ''}`));
    });
  }

  /** Connecting until the first byte, or for `ms` while ssh runs: then `connect`, as a net.Socket's. */
  connectingFor(ms: number): void {
    this.connecting = true;
    this.#connectTimer = setTimeout(() => this.#connected(), ms);
    this.#connectTimer.unref();
  }

  #connected(): void {
    clearTimeout(this.#connectTimer);
    if (!this.connecting || this.destroyed) return;
    this.connecting = false;
    this.emit('connect');
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.child.stdin.write(chunk, (error) => done(error ?? null));
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return done();
    this.child.stdin.end(() => done());
  }

  // What an HTTP agent asks of a kept-alive connection (a net.Socket's): an idle one does not keep
  // the process alive, a reused one does again.
  unref(): this {
    for (const handle of [this.child, this.child.stdin, this.child.stdout, this.child.stderr]) (handle as { unref?: () => void }).unref?.();
    return this;
  }

  ref(): this {
    for (const handle of [this.child, this.child.stdin, this.child.stdout, this.child.stderr]) (handle as { ref?: () => void }).ref?.();
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  setTimeout(): this {
    return this;
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    clearTimeout(this.#connectTimer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    done(error);
  }
}
