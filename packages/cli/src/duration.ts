import { ConfigError } from '@prebuilt/core';

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * A duration option as the user types it — `30s`, `4m`, `1h` — in milliseconds (at least 1s).
 * `option` names the option in the message (`--interval`, `--timeout`).
 */
export function parseDuration(value: string, option: string): number {
  const match = /^(\d+)(s|m|h)$/.exec(value.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : NaN;
  if (!(ms >= 1000)) throw new ConfigError(`${option} ${value} is not a duration of at least 1s (write e.g. 30s, 4m or 1h).`, { hint: 'Write it as a whole number and a unit: s, m or h.' });
  return ms;
}
