import { ExitCode, PrebuiltError, type PrebuiltErrorOptions } from '@prebuilt/core/extraction';

/** A package file is corrupt, truncated, or has an entry that would land outside the env prefix. Exit 1. */
export class ArchiveError extends PrebuiltError {
  /** The package (file name) the problem is in. */
  readonly packageName: string;
  constructor(message: string, packageName: string, options: PrebuiltErrorOptions = {}) {
    super('archive', message, ExitCode.failure, options);
    this.name = 'ArchiveError';
    this.packageName = packageName;
  }
}

/** A package cannot be installed into the env prefix as locked (e.g. the prefix is too long). Exit 1. */
export class InstallError extends PrebuiltError {
  readonly packageName: string;
  constructor(message: string, packageName: string, options: PrebuiltErrorOptions = {}) {
    super('install', message, ExitCode.failure, options);
    this.name = 'InstallError';
    this.packageName = packageName;
  }
}
