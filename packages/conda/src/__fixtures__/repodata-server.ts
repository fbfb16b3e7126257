// A hand-written conda channel for one test file: its repodata as the test gives it.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll } from 'vitest';

export interface RepodataServer {
  /** `http://127.0.0.1:<port>`: a channel is `${origin}/<name>`. */
  origin: string;
}

/**
 * Serves `GET /<channel>/<subdir>/repodata.json` with `repodata(channel, subdir)` for the calling
 * test file: a string is sent as it is (JSON a test writes by hand, e.g. a number no double holds),
 * any other value as its JSON; undefined, or any other path, is a 404. `origin` is filled in by a
 * `beforeAll` registered here, and an `afterAll` stops the server.
 */
export function useRepodataServer(repodata: (channel: string, subdir: string) => unknown): RepodataServer {
  const served = {} as RepodataServer;
  let server: Server | undefined;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const match = /^\/([^/]+)\/([^/]+)\/repodata\.json$/.exec(req.url ?? '');
      const body = match ? repodata(match[1]!, match[2]!) : undefined;
      if (body === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    served.origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });
  return served;
}
