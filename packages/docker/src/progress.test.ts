import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { decodeStatusResponse } from './buildkit-trace.js';
import { MAX_EVENT_LINE, MAX_LOG_LINE, ProgressTracker, readEvents, type DockerStreamEvent } from './progress.js';

// Real `moby.buildkit.trace` payloads captured from Docker 20.10 building
// `FROM 127.0.0.1:5710/pbtest/base:1` / `RUN echo hello && false`.
const TRACE_RUN_VERTEX =
  'Cr8BCkdzaGEyNTY6ZjhhYzk3MmZkMmY5MTk5MDc5NzkxMDM1NWU2MThhYTIwZWJlYzc4YzdkOWUxY2JhODdiNmFjYjBlNTk2YThhYRJHc2hhMjU2Ojc2NmQ4NDU2YjBkYjRmZThmMDZhNTAxZTQ4ZDg2MTBkYjJkZjNlZjhiZmYwZDU5M2E0M2NjMmZjYmYzYjA0ZDkaHVsyLzJdIFJVTiBlY2hvIGhlbGxvICYmIGZhbHNlKgwIg6Kl2AYQzuCOgAM=';
const TRACE_RUN_LOG =
  'GmEKR3NoYTI1NjpmOGFjOTcyZmQyZjkxOTkwNzk3OTEwMzU1ZTYxOGFhMjBlYmVjNzhjN2Q5ZTFjYmE4N2I2YWNiMGU1OTZhOGFhEgwIg6Kl2AYQhp7VvgMYASIGaGVsbG8K';
const RUN_DIGEST = 'sha256:f8ac972fd2f91990797910355e618aa20ebec78c7d9e1cba87b6acb0e596a8aa';

describe('BuildKit trace decoding', () => {
  it('reads vertex names and log messages from real trace payloads', () => {
    const vertex = decodeStatusResponse(TRACE_RUN_VERTEX);
    expect(vertex.vertexes).toEqual([
      { digest: RUN_DIGEST, name: '[2/2] RUN echo hello && false', cached: false, started: true, completed: false, error: '' },
    ]);
    const log = decodeStatusResponse(TRACE_RUN_LOG);
    expect(log.logs).toHaveLength(1);
    expect(log.logs[0]!.vertex).toBe(RUN_DIGEST);
    expect(log.logs[0]!.msg.toString()).toBe('hello\n');
  });

  it('throws on a truncated payload instead of inventing data', () => {
    expect(() => decodeStatusResponse(Buffer.from(TRACE_RUN_VERTEX, 'base64').subarray(0, 20).toString('base64'))).toThrow();
  });
});

describe('progress tracker', () => {
  it('legacy builder: joins partial lines, keeps a bounded tail, flags an error in a FROM step', () => {
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line), 3);
    const events: DockerStreamEvent[] = [
      { stream: 'Step 1/2 : FROM x' },
      { stream: '\n' },
      { status: 'Pulling from x', id: '1' },
      { status: 'Downloading', id: 'abc', progressDetail: { current: 1, total: 2 } },
      { errorDetail: { message: 'manifest unknown' }, error: 'manifest unknown' },
    ];
    for (const event of events) tracker.handle(event);
    tracker.flush();
    expect(lines).toEqual(['Step 1/2 : FROM x', '1: Pulling from x', 'ERROR: manifest unknown']);
    expect(tracker.error).toBe('manifest unknown');
    expect(tracker.errorInFrom).toBe(true);
    expect(tracker.failedFrom).toBe('x');

    // Which FROM failed, when there are several (the micromamba recipe's stage, then the base).
    const second = new ProgressTracker(undefined, 5);
    for (const event of [{ stream: 'Step 1/3 : FROM --platform=linux/amd64 mamba:1 AS micromamba\n' }, { stream: 'Step 2/3 : FROM base:1\n' }, { error: 'manifest for base:1 not found' }]) second.handle(event);
    expect(second.failedFrom).toBe('base:1');

    // A RUN step printing what reads like a FROM step (an earlier number, another total) and failing: a RUN failure still.
    for (const fake of ['Step 1/3 : FROM fake:1', 'Step 2/3 : FROM fake:1', 'Step 3/9 : FROM fake:1']) {
      const fooled = new ProgressTracker(undefined, 5);
      for (const event of [{ stream: 'Step 1/3 : FROM base:1\n' }, { stream: 'Step 2/3 : RUN ./install\n' }, { stream: ` ---> Running in 0123456789ab\n${fake}\n` }, { error: "The command '/bin/sh -c ./install' returned a non-zero code: 1" }]) fooled.handle(event);
      expect(fooled.errorInFrom, fake).toBe(false);
      expect(fooled.failedFrom, fake).toBeUndefined();
    }

    // The next step's number with the build's own total: only the Dockerfile tells it from a step (its step 3 is a LABEL).
    const dockerfile = 'FROM base:1\nRUN ./install\nLABEL a=b\n';
    const next = new ProgressTracker(undefined, 5, { dockerfile });
    for (const event of [{ stream: 'Step 1/3 : FROM base:1\n' }, { stream: 'Step 2/3 : RUN ./install\n' }, { stream: ' ---> Running in 0123456789ab\nStep 3/3 : FROM fake:1\n' }, { error: "The command '/bin/sh -c ./install' returned a non-zero code: 1" }]) next.handle(event);
    expect(next.errorInFrom).toBe(false);
    expect(next.failedFrom).toBeUndefined();
    // The real steps are still read as steps: a FROM failing is one.
    const real = new ProgressTracker(undefined, 5, { dockerfile: 'FROM base:1 AS one\nRUN ./install\nFROM other:2\n' });
    for (const event of [{ stream: 'Step 1/3 : FROM base:1 AS one\n' }, { stream: 'Step 2/3 : RUN ./install\n' }, { stream: ' ---> 0123456789ab\n' }, { stream: 'Step 3/3 : FROM other:2\n' }, { error: 'manifest for other:2 not found' }]) real.handle(event);
    expect(real.errorInFrom).toBe(true);
    expect(real.failedFrom).toBe('other:2');

    const run = new ProgressTracker(undefined, 2);
    for (const event of [{ stream: 'Step 2/2 : RUN false\n' }, { stream: 'a\nb\nc\n' }, { error: 'returned a non-zero code: 1' }]) run.handle(event);
    expect(run.tail).toEqual(['c', 'ERROR: returned a non-zero code: 1']);
    expect(run.errorInFrom).toBe(false);
    expect(run.failedFrom).toBeUndefined();
  });

  it('a build step printing without newlines (10 MB in 1 kB pieces) gives one line cut at MAX_LOG_LINE, not a line that grows without end', () => {
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line), 5);
    for (let i = 0; i < 10_000; i++) tracker.handle({ stream: 'x'.repeat(1000) });
    tracker.handle({ stream: 'tail of the long line\nnext line\n' });
    // A progress bar redrawn with carriage returns, far longer than a line in all: its last version.
    for (let i = 0; i <= 100_000; i++) tracker.handle({ stream: `\rdownloading ${i}` });
    tracker.handle({ stream: '\n' });
    tracker.flush();
    expect(lines.map((line) => line.length)).toEqual([MAX_LOG_LINE + ` … (line cut at ${MAX_LOG_LINE} characters)`.length, 'next line'.length, 'downloading 100000'.length]);
    expect(lines[0]).toMatch(/^x+ … \(line cut at 16384 characters\)$/);
    expect(lines.slice(1)).toEqual(['next line', 'downloading 100000']);
    // A status or an error of 1 MB is one line, cut the same way.
    tracker.handle({ status: 's'.repeat(1 << 20) });
    tracker.handle({ error: 'e'.repeat(1 << 20) });
    expect(tracker.tail.slice(-2).map((line) => line.length)).toEqual([MAX_LOG_LINE, MAX_LOG_LINE].map((n) => n + ` … (line cut at ${MAX_LOG_LINE} characters)`.length));
  });

  it('BuildKit: announces vertices once and splits their logs into lines', () => {
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line), 30);
    tracker.handle({ id: 'moby.buildkit.trace', aux: TRACE_RUN_VERTEX });
    tracker.handle({ id: 'moby.buildkit.trace', aux: TRACE_RUN_VERTEX });
    tracker.handle({ id: 'moby.buildkit.trace', aux: TRACE_RUN_LOG });
    tracker.handle({ id: 'moby.image.id', aux: { ID: 'sha256:1234' } });
    tracker.flush();
    expect(lines).toEqual(['=> [2/2] RUN echo hello && false', 'hello']);
    expect(tracker.imageId).toBe('sha256:1234');
  });

  it('BuildKit: a UTF-8 character cut between two log messages is decoded whole, each output stream apart', () => {
    // StatusResponse { logs = 3: VertexLog { vertex = 1, stream = 3, msg = 4 } }, encoded by hand.
    const bytesField = (number: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([(number << 3) | 2, value.length]), value]);
    const trace = (stream: number, msg: Buffer): string =>
      bytesField(3, Buffer.concat([bytesField(1, Buffer.from(RUN_DIGEST)), Buffer.from([3 << 3, stream]), bytesField(4, msg)])).toString('base64');
    const out = Buffer.from('grüße ✓\n');
    const err = Buffer.from('€ warn\n');
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line), 30);
    tracker.handle({ id: 'moby.buildkit.trace', aux: trace(1, out.subarray(0, 3)) }); // `gr` and the first byte of `ü`
    tracker.handle({ id: 'moby.buildkit.trace', aux: trace(2, err.subarray(0, 1)) }); // the first byte of `€`, on stderr
    tracker.handle({ id: 'moby.buildkit.trace', aux: trace(1, out.subarray(3)) });
    tracker.handle({ id: 'moby.buildkit.trace', aux: trace(2, err.subarray(1)) });
    expect(decodeStatusResponse(trace(2, err)).logs[0]).toMatchObject({ vertex: RUN_DIGEST, stream: 2 });
    tracker.flush();
    expect(lines).toEqual(['grüße ✓', '€ warn']);
  });

  it('push: takes the digest from aux, skips progress noise', () => {
    const lines: string[] = [];
    const tracker = new ProgressTracker((line) => lines.push(line), 30);
    tracker.handle({ status: 'The push refers to repository [r/x]' });
    tracker.handle({ status: 'Pushing', id: 'abc', progressDetail: { current: 5, total: 10 }, progress: '[=>  ]' });
    tracker.handle({ status: 'Pushed', id: 'abc', progressDetail: {} });
    tracker.handle({ aux: { Tag: 't', Digest: 'sha256:' + 'e'.repeat(64), Size: 527 } });
    expect(tracker.digest).toBe('sha256:' + 'e'.repeat(64));
    expect(lines).toEqual(['The push refers to repository [r/x]', 'abc: Pushed']);
    expect(tracker.error).toBeUndefined();
  });

  it('push: takes the digest from the status line when there is no aux (Docker 26 with the containerd image store), aux first when both', () => {
    const pushed = 'sha256:' + 'c'.repeat(64);
    const tracker = new ProgressTracker(undefined, 30);
    tracker.handle({ status: 'The push refers to repository [127.0.0.1:5100/x]' });
    tracker.handle({ status: 'Mounted from prebuilt-test/base', progressDetail: {}, id: '1e35e829457a' });
    tracker.handle({ status: 'Digest: sha256:' + 'd'.repeat(64) }); // a pull's line: not a pushed digest
    expect(tracker.digest).toBeUndefined();
    tracker.handle({ status: `run-1.2: digest: ${pushed} size: 529` });
    expect(tracker.digest).toBe(pushed);

    const both = new ProgressTracker(undefined, 30);
    both.handle({ status: `t: digest: ${pushed} size: 529` });
    both.handle({ aux: { Tag: 't', Digest: 'sha256:' + 'e'.repeat(64), Size: 529 } });
    expect(both.digest).toBe('sha256:' + 'e'.repeat(64));
  });

  it('a character split across chunks (a multi-byte UTF-8 one) is read whole, not as two replacement characters', async () => {
    const bytes = Buffer.from('{"stream":"Schritt ✓ fertig\\n"}\n');
    const at = bytes.indexOf(Buffer.from('✓')) + 1;
    const events: DockerStreamEvent[] = [];
    await readEvents(Readable.from([bytes.subarray(0, at), bytes.subarray(at)]), (e) => events.push(e));
    expect(events).toEqual([{ stream: 'Schritt ✓ fertig\n' }]);
  });

  it('reads newline-delimited JSON split across chunks, keeping non-JSON lines as text', async () => {
    const events: DockerStreamEvent[] = [];
    await readEvents(Readable.from(['{"stream":"a\\n"}\r\n{"str', 'eam":"b"}\nplain text\n', '{"aux":{"ID":"x"}}']), (e) => events.push(e));
    expect(events).toEqual([{ stream: 'a\n' }, { stream: 'b' }, { stream: 'plain text\n' }, { aux: { ID: 'x' } }]);
  });

  it('refuses an event line longer than 4 MiB (a stream without newlines cannot fill the memory), after the lines before it', async () => {
    const events: DockerStreamEvent[] = [];
    const endless = Readable.from((function* () {
      yield '{"status":"first"}\n';
      for (let i = 0; i < 80; i++) yield 'x'.repeat(64 * 1024);
    })());
    await expect(readEvents(endless, (e) => events.push(e))).rejects.toThrow(`a progress event of the Docker daemon is longer than ${MAX_EVENT_LINE} characters`);
    expect(events).toEqual([{ status: 'first' }]);
    expect(endless.destroyed).toBe(true);
  });
});
