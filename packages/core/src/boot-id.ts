import { readFileSync } from 'node:fs';

/**
 * The kernel's boot id (`/proc/sys/kernel/random/boot_id`: new at each boot, the same in every
 * container of the machine); undefined without /proc (macOS). Caches record it beside what they
 * write without flushing to disk: what a power cut may have damaged was written in an earlier boot,
 * and is checked once before it is used again. Read once per process.
 */
let bootId: string | null | undefined;
export function currentBootId(): string | undefined {
  if (bootId === undefined) {
    try {
      bootId = /^[0-9a-f-]{36}$/.exec(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim())?.[0] ?? null;
    } catch {
      bootId = null;
    }
  }
  return bootId ?? undefined;
}
