/**
 * What the application layer needs from the run it serves: where it runs, what it reads, and the
 * signal that aborts it. The CLI's context is one (commands pass theirs); nothing here writes to a
 * terminal — progress goes out through callbacks and results come back as values.
 */
export interface AppScope {
  /** The user's project directory (backends are resolved from here first). */
  cwd: string;
  /** The CLI package's install directory (backends are resolved from here second). */
  cliDir: string;
  env: Record<string, string | undefined>;
  /** Aborted when the user interrupts (SIGINT) or the process is terminated (SIGTERM). */
  signal: AbortSignal;
}
