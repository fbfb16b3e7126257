/**
 * The entry of an extraction worker thread (extract-pool.ts): extracts the conda packages it is
 * sent — several at once, as the main thread would — with the same code and bounds as an
 * extraction on the main thread (conda-extract.ts: streaming, every byte counted against the
 * package's budget, body files under names this code makes), and hashes each archive's md5 for
 * its conda-meta record. Nothing here touches the prefix: linking through the jail stays on the
 * main thread. Errors are sent back as plain data and rebuilt there (extract-pool.ts).
 */
import { parentPort } from 'node:worker_threads';
import { hashFile } from '../cache/sha256-file.js';
import { extractCondaPackage } from './conda-extract.js';
import { serialiseError, type ExtractReply, type ExtractRequest } from './extract-pool.js';

const port = parentPort;
if (!port) throw new Error('extract-worker.js runs as a worker thread (extract-pool.ts starts it).');

port.on('message', (request: ExtractRequest) => {
  const { id, file, label, scratch, mtime, md5 } = request;
  const job = Promise.all([
    extractCondaPackage(file, label, scratch, mtime === undefined ? {} : { mtime }),
    md5 ? hashFile(file, 'md5') : Promise.resolve(undefined),
  ]);
  job.then(
    ([contents, digest]) => port.postMessage({ id, info: [...contents.info], entries: contents.entries, ...(digest ? { md5: digest } : {}) } satisfies ExtractReply),
    (error: unknown) => port.postMessage({ id, error: serialiseError(error) } satisfies ExtractReply),
  );
});
