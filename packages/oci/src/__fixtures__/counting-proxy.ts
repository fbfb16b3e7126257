// An HTTP proxy on 127.0.0.1 in front of a plain registry that counts, per blob digest, the body
// bytes its GET responses carried (whole blobs and range requests alike).
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  /** host:port of the proxy. */
  host: string;
  /** Body bytes sent per blob digest since the last reset. */
  blobBytes: Map<string, number>;
  /** The Range headers of blob GETs since the last reset. */
  ranges: string[];
  /** The same, per blob digest. */
  blobRanges: Map<string, string[]>;
  /** Per blob digest, the Range headers whose responses have been sent in full. */
  completedRanges: Map<string, string[]>;
  reset: () => void;
  close: () => Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const [targetHost, targetPort] = target.split(':');
  const blobBytes = new Map<string, number>();
  const ranges: string[] = [];
  const blobRanges = new Map<string, string[]>();
  const completedRanges = new Map<string, string[]>();
  const server: Server = createServer((req, res) => {
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '')?.[1];
    const upstream = httpRequest(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: { ...req.headers, host: target } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.on('data', (chunk: Buffer) => {
          if (blob && req.method === 'GET') blobBytes.set(blob, (blobBytes.get(blob) ?? 0) + chunk.length);
        });
        up.pipe(res);
        const range = req.headers.range;
        if (blob && req.method === 'GET' && range) res.on('finish', () => completedRanges.set(blob, [...(completedRanges.get(blob) ?? []), range]));
      },
    );
    if (blob && req.method === 'GET' && req.headers.range) {
      ranges.push(req.headers.range);
      blobRanges.set(blob, [...(blobRanges.get(blob) ?? []), req.headers.range]);
    }
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    blobBytes,
    ranges,
    blobRanges,
    completedRanges,
    reset: () => {
      blobBytes.clear();
      blobRanges.clear();
      completedRanges.clear();
      ranges.length = 0;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
