import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A registry on 127.0.0.1 that answers `GET /v2/` (so a client knows it speaks the API, without
 * auth) and then holds every other request open without a byte of answer: a pull from it never
 * finishes, so a build whose base is on it stays busy until it is cancelled. `close` ends the held
 * requests and the server.
 */
export interface StallingRegistry {
  host: string;
  /** Requests held open so far (a cancelled client's request stays counted). */
  held(): number;
  close(): Promise<void>;
}

export async function startStallingRegistry(): Promise<StallingRegistry> {
  const sockets = new Set<Socket>();
  const held: ServerResponse[] = [];
  const server: Server = createServer((request, response) => {
    if (request.url === '/v2/' || request.url === '/v2') {
      response.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      response.end('{}');
      return;
    }
    held.push(response);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    held: () => held.length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
