import { createLogger, errorMessage, type BuildLog } from '@prebuilt/core/backend';
import { DIGEST_LINE } from './buildspec.js';
import type { CodeBuildClients } from './codebuild-clients.js';

const debug = createLogger('codebuild');

/** The parts of a BatchGetBuilds build the service looks at. */
export interface BuildInfo {
  buildStatus?: string;
  logs?: { groupName?: string; streamName?: string };
  exportedEnvironmentVariables?: { name?: string; value?: string }[];
  phases?: { phaseType?: string; phaseStatus?: string; contexts?: { statusCode?: string; message?: string }[] }[];
}

/** Most pages of log events read in one go. */
const MAX_PAGES = 50;

/**
 * A build's CloudWatch log stream, read forward from where the last read stopped into the build
 * log; remembers the digest line the buildspec prints.
 */
export class CloudWatchLog {
  /** The digest of the last `PREBUILT_DIGEST=…` line seen. */
  digest: string | undefined;
  #token: string | undefined;

  constructor(
    private readonly clients: Pick<CodeBuildClients, 'sdk' | 'logs'>,
    private readonly log: BuildLog,
  ) {}

  /** Reads what is new in the build's log stream (nothing while the stream does not exist yet). */
  async drain(build: BuildInfo): Promise<void> {
    const group = build.logs?.groupName;
    const stream = build.logs?.streamName;
    if (!group || !stream) return;
    const { sdk, logs } = this.clients;
    for (let page = 0; page < MAX_PAGES; page++) {
      let response;
      try {
        response = await logs.send(
          new sdk.logs.GetLogEventsCommand({ logGroupName: group, logStreamName: stream, startFromHead: true, ...(this.#token ? { nextToken: this.#token } : {}) }),
        );
      } catch (error) {
        // The stream appears a little after the build starts.
        if ((error as { name?: string }).name !== 'ResourceNotFoundException') debug('GetLogEvents: %s', errorMessage(error));
        return;
      }
      for (const event of response.events ?? []) this.#event(event.message ?? '');
      const next = response.nextForwardToken;
      const same = next === undefined || next === this.#token;
      this.#token = next ?? this.#token;
      if (same || (response.events ?? []).length === 0) return;
    }
  }

  #event(message: string): void {
    for (const line of message.split(/\r?\n/)) {
      if (line.trim() === '') continue;
      this.log.line(line);
      const match = DIGEST_LINE.exec(line.trim());
      if (match) this.digest = match[1];
    }
  }
}
