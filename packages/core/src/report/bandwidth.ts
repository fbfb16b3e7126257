import { InputError } from '../errors.js';

const PREFIXES: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4 };

/** A bandwidth as given and in bytes per second. */
export interface Bandwidth {
  text: string;
  bytesPerSecond: number;
}

/**
 * Parses a bandwidth: a number and a unit per second — bytes (`100MB/s`, `1.5 GiB/s`, `800kB/s`)
 * or bits (`1Gbit/s`, `500 Mbit/s`, `100Mbps`). Decimal prefixes are powers of 1000, `Ki`/`Mi`/`Gi`
 * of 1024. Anything else is an InputError naming the forms it takes.
 */
export function parseBandwidth(text: string): Bandwidth {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?(b|bytes?|bit|bits)(?:\/s|ps)\s*$/i.exec(text);
  const fail = (why: string): never => {
    throw new InputError(`--bandwidth '${text}' is not a bandwidth: ${why}.`, {
      hint: 'Give a number and a unit per second: bytes like 100MB/s, 50MiB/s, 1.5GB/s, or bits like 1Gbit/s, 500Mbps.',
    });
  };
  if (!match) return fail('expected a number followed by a unit such as MB/s or Gbit/s');
  const value = Number(match[1]);
  const prefix = (match[2] ?? '').toLowerCase();
  const unit = match[3]!;
  // `b` alone: `B` is bytes, `b` bits (as in Mbps / Mb/s).
  const bits = /^bits?$/i.test(unit) || unit === 'b';
  const bytesPerSecond = (value * PREFIXES[prefix]!) / (bits ? 8 : 1);
  if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) return fail('it must be more than zero');
  return { text: text.trim(), bytesPerSecond };
}

/** Seconds to move `bytes` at `bandwidth`. */
export function transferSeconds(bytes: number, bandwidth: Bandwidth): number {
  return bytes / bandwidth.bytesPerSecond;
}
