/**
 * The face of @prebuilt/core an extraction worker thread loads (`@prebuilt/core/extraction`): the
 * errors, the strict tar reader, the file modes and the logger — nothing else. The conda package's
 * extraction worker (extract-worker.ts) starts in every build; loading the whole barrel there
 * compiled ~90 more modules (the registry client, the settings, the backends' kit) on that thread
 * for nothing. The same modules as the barrel's, so classes are the same (`instanceof` holds).
 */
export { ExitCode, PrebuiltError, TarFormatError, errorMessage, type PrebuiltErrorOptions } from './errors.js';
export { normalisedMode } from './file-tree.js';
export { createLogger } from './logger.js';
export { TAR_BLOCK, decodeTarHeader, tarPadding, type TarHeader } from './tar/tar-header.js';
export { TarExtendedHeaders, isExtendedHeader } from './tar/tar-extended-headers.js';
export { afterZeroBlock, tarStreamEntries } from './tar/tar-stream-reader.js';
