import { ExitCode, PrebuiltError, type PrebuiltErrorOptions } from '@prebuilt/core';

/** A locked file could not be downloaded (HTTP error, refused connection, too many retries). Exit 1. */
export class PackageDownloadError extends PrebuiltError {
  readonly url: string;
  readonly status: number | undefined;
  constructor(message: string, fields: { url: string; status?: number }, options: PrebuiltErrorOptions = {}) {
    super('package-download', message, ExitCode.failure, options);
    this.name = 'PackageDownloadError';
    this.url = fields.url;
    this.status = fields.status;
  }
}

/** A downloaded file does not match the hash (or size) the lock records. The file is discarded. Exit 1. */
export class PackageIntegrityError extends PrebuiltError {
  readonly url: string;
  readonly expectedSha256: string;
  readonly actualSha256: string;
  constructor(
    message: string,
    fields: { url: string; expectedSha256: string; actualSha256: string },
    options: PrebuiltErrorOptions = {},
  ) {
    super('package-integrity', message, ExitCode.failure, options);
    this.name = 'PackageIntegrityError';
    this.url = fields.url;
    this.expectedSha256 = fields.expectedSha256;
    this.actualSha256 = fields.actualSha256;
  }
}
