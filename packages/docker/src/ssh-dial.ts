import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Agent } from 'node:http';
import { Duplex } from 'node:stream';

/** How much of ssh's stderr a failed connection's error quotes. */
const STDERR_TAIL = 2048;

/** What {@link dialSsh} needs: the ssh host, port and login of `ssh://user@host:port`. */
export interface SshTarget {
  host?: string;
  port?: number;
  username?: string;
}

/** The arguments of `ssh` for a Docker host, as the docker CLI runs it. */
export function sshArguments(target: SshTarget): string[] {
  return [
    ...(target.port !== undefined && target.port !== 22 ? ['-p', String(target.port)] : []),
    ...(target.username ? ['-l', target.username] : []),
    '--',
    target.host ?? '',
    'docker',
    'system',
    'dial-stdio',
  ];
}

/**
 * A connection to the Docker daemon of an ssh host, as the docker CLI makes it: the local `ssh`
 * program runs `docker system dial-stdio` there, and its stdin/stdout are the connection (the
 * user's ssh configuration, keys and agent apply). One process per connection, killed when the
 * connection closes; an ssh that exits with an error fails the connection with its stderr.
 */
export function dialSsh(target: SshTarget): Duplex {
  const child = spawn('ssh', sshArguments(target), { stdio: ['pipe', 'pipe', 'pipe'] });
  return new SshStream(child, target.host ?? '');
}

/**
 * A keep-alive HTTP agent whose connections are {@link dialSsh} processes: the requests of a build
 * (check, build, push, remove) share one ssh connection instead of paying a handshake each.
 * `destroy()` ends them all.
 */
export class SshAgent extends Agent {
  constructor(private readonly target: SshTarget) {
    super({ keepAlive: true });
  }

  override createConnection(): Duplex {
    return dialSsh(this.target);
  }
}

class SshStream extends Duplex {
  #stderr = '';

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    host: string,
  ) {
    super({ allowHalfOpen: false }); // the daemon's end of the connection ends ours
    child.stdout.on('data', (chunk: Buffer) => {
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
      const why = this.#stderr.trim().split('\n').slice(-3).join(' ').trim();
      this.destroy(new Error(`ssh to ${host} exited with ${code ?? signal}${why ? `: ${why}` : ''}`));
    });
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
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    done(error);
  }
}
