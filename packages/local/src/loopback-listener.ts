import { readFileSync } from 'node:fs';

/** The system's tables of TCP sockets (Linux); absent elsewhere. */
const PROC_NET_TCP = ['/proc/net/tcp', '/proc/net/tcp6'] as const;

/**
 * The local addresses, as /proc/net/tcp{,6} writes them, whose listening socket takes a connection
 * to 127.0.0.1: 127.0.0.1 itself, 0.0.0.0, :: and ::ffff:127.0.0.1 (a dual-stack socket).
 */
const REACHED_FROM_LOOPBACK = new Set(['0100007F', '00000000', '00000000000000000000000000000000', '0000000000000000FFFF00000100007F']);
const LISTEN = '0A';

/**
 * The owners (uids) of the sockets listening on TCP `port` that a connection to 127.0.0.1:<port>
 * can reach, read from the texts of /proc/net/tcp and /proc/net/tcp6; undefined when there is
 * neither (not Linux): then nothing can be told.
 */
export function loopbackListenerUids(port: number, tables: readonly (string | undefined)[] = readTables()): number[] | undefined {
  if (tables.every((table) => table === undefined)) return undefined;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const uids: number[] = [];
  for (const table of tables) {
    for (const line of (table ?? '').split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid …
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || fields[3] !== LISTEN) continue;
      const [address, hex] = fields[1]!.split(':');
      if (hex === hexPort && REACHED_FROM_LOOPBACK.has(address!.toUpperCase())) uids.push(Number(fields[7]));
    }
  }
  return uids;
}

function readTables(): (string | undefined)[] {
  return PROC_NET_TCP.map((file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  });
}
