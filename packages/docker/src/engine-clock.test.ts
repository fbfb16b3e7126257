import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NetworkError } from '@prebuilt/core/backend';
import { RequestClock } from './engine-clock.js';

const servers: Server[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A daemon on 127.0.0.1 answering `GET /` with `write` (its answer, written as it likes). */
async function daemon(write: (res: import('node:http').ServerResponse) => void): Promise<number> {
  const server = createServer((_req, res) => write(res));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** `GET /` under a RequestClock (an `idle` JSON call): the answer's text, or the error the clock failed it with. */
function call(port: number, limits: { idleMs: number; deadlineMs: number }): Promise<string | Error> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/' });
    const clock = new RequestClock(limits, { shownHost: `127.0.0.1:${port}`, ssh: false, method: 'GET', path: '/' }, req, 'idle');
    req.on('response', (res) => {
      clock.answered(res);
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
      res.on('error', (error) => resolve(error));
    });
    req.on('error', (error) => resolve(error));
    req.end();
  });
}

describe('the clock of an Engine API request', () => {
  it('counts elapsed time, not the wall clock: a clock stepped forward (NTP, date -s) fails no answer in progress, one stepped back leaves none hanging', async () => {
    const trickle = await daemon((res) => {
      res.writeHead(200);
      let sent = 0;
      const timer = setInterval(() => (++sent > 20 ? (clearInterval(timer), res.end()) : res.write('x')), 50);
      res.on('close', () => clearInterval(timer));
    });
    const stalled = await daemon((res) => {
      res.writeHead(200);
      res.write('{');
    });
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    const answer = call(trickle, { idleMs: 500, deadlineMs: 10_000 });
    setTimeout(() => vi.setSystemTime(Date.now() + 3_600_000), 300);
    expect(await answer).toBe('x'.repeat(20));
    const started = performance.now();
    const hung = call(stalled, { idleMs: 500, deadlineMs: 10_000 });
    setTimeout(() => vi.setSystemTime(Date.now() - 3_600_000), 100);
    const error = await hung;
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toBe(`The Docker daemon at 127.0.0.1:${stalled} sent nothing for 0.5 s in its answer to GET / (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT).`);
    expect(performance.now() - started).toBeLessThan(3000);
  }, 20_000);
});
