import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { sha256Tap } from './sha256-tap.js';

describe('sha256Tap', () => {
  it('passes the bytes through unchanged and reports their sha256 and size', async () => {
    const parts = [Buffer.from('hello '), Buffer.from('world'), Buffer.alloc(100_000, 7)];
    const seen: Buffer[] = [];
    const tap = sha256Tap();
    await pipeline(Readable.from(parts), tap.stream, new Writable({ write: (c: Buffer, _e, cb) => (seen.push(c), cb()) }));
    const all = Buffer.concat(parts);
    expect(Buffer.concat(seen).equals(all)).toBe(true);
    expect(tap.hex()).toBe(createHash('sha256').update(all).digest('hex'));
    expect(tap.size()).toBe(all.length);
  });
});
