/**
 * A FAKE of the Google Cloud Storage JSON API (not GCS): simple (multipart) uploads, media
 * downloads and deletes, served on 127.0.0.1 for `new Storage({ apiEndpoint })`. Objects are kept
 * in memory; responses carry `md5Hash` and `crc32c` so the client's upload validation really runs.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli) as GCS reports it: base64 of the big-endian 32-bit value. */
function crc32cBase64(data: Buffer): string {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

export class FakeGcs {
  /** `bucket/name` → content. */
  readonly objects = new Map<string, Buffer>();
  readonly requests: { method: string; path: string }[] = [];
  readonly #server: Server;

  private constructor() {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((error: unknown) => this.#json(res, 500, { error: { code: 500, message: String(error) } }));
    });
  }

  static async start(): Promise<FakeGcs> {
    const fake = new FakeGcs();
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #resource(bucket: string, name: string, data: Buffer): Record<string, unknown> {
    return {
      kind: 'storage#object',
      id: `${bucket}/${name}/1`,
      name,
      bucket,
      generation: '1',
      size: String(data.length),
      md5Hash: createHash('md5').update(data).digest('base64'),
      crc32c: crc32cBase64(data),
      contentType: 'application/octet-stream',
    };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);

    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname))) {
      const bucket = decodeURIComponent(m[1]!);
      const type = url.searchParams.get('uploadType');
      let name = url.searchParams.get('name') ?? undefined;
      let data: Buffer = body;
      if (type === 'multipart') {
        const boundary = /boundary="?([^";]+)"?/.exec(req.headers['content-type'] ?? '')?.[1];
        if (!boundary) return this.#json(res, 400, { error: { code: 400, message: 'multipart upload without a boundary' } });
        const parts = splitMultipart(body, boundary);
        if (parts.length !== 2) return this.#json(res, 400, { error: { code: 400, message: `expected 2 parts, got ${parts.length}` } });
        const metadata = JSON.parse(parts[0]!.toString('utf8')) as { name?: string };
        name = metadata.name ?? name;
        data = parts[1]!;
      } else if (type !== 'media') {
        return this.#json(res, 400, { error: { code: 400, message: `the fake supports uploadType multipart and media, not ${type}` } });
      }
      if (!name) return this.#json(res, 400, { error: { code: 400, message: 'no object name' } });
      this.objects.set(`${bucket}/${name}`, data);
      return this.#json(res, 200, this.#resource(bucket, name, data));
    }
    if ((m = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname))) {
      const key = `${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`;
      const data = this.objects.get(key);
      if (!data) return this.#json(res, 404, { error: { code: 404, message: `No such object: ${key}` } });
      if (req.method === 'DELETE') {
        this.objects.delete(key);
        res.writeHead(204);
        return void res.end();
      }
      if (req.method === 'GET' && url.searchParams.get('alt') === 'media') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
        return void res.end(data);
      }
      if (req.method === 'GET') return this.#json(res, 200, this.#resource(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), data));
    }
    this.#json(res, 404, { error: { code: 404, message: `the fake has no route for ${req.method} ${url.pathname}` } });
  }
}

/** The bodies of a multipart/related payload. */
function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let start = body.indexOf(delimiter);
  while (start !== -1) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next === -1) break;
    const part = body.subarray(start + delimiter.length, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd !== -1) {
      let content = part.subarray(headerEnd + 4);
      if (content.subarray(-2).toString() === '\r\n') content = content.subarray(0, -2);
      parts.push(content);
    }
    start = next;
  }
  return parts;
}
