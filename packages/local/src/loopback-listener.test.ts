import { describe, expect, it } from 'vitest';
import { loopbackListenerUids } from './loopback-listener.js';

const HEADER4 = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const HEADER6 = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const row = (sl: number, local: string, remote: string, st: string, uid: number) =>
  `   ${sl}: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000  ${uid}        0 4910725 1 00000000c5545ed0 100 0 0 10 0`;

describe('loopbackListenerUids', () => {
  it('gives the owners of the sockets listening where a connection to 127.0.0.1:<port> arrives (127.0.0.1, 0.0.0.0, ::, ::ffff:127.0.0.1)', () => {
    // Port 5000 is 1388 in hex.
    const tcp = [
      HEADER4,
      row(0, '0100007F:1388', '00000000:0000', '0A', 1000),
      row(1, '00000000:1388', '00000000:0000', '0A', 1001),
      row(2, '0100007F:1389', '00000000:0000', '0A', 1002), // another port
      row(3, '0200007F:1388', '00000000:0000', '0A', 1003), // 127.0.0.2
      row(4, '0100007F:1388', '0100007F:D431', '01', 1004), // an established connection, not a listener
      '',
    ].join('\n');
    const tcp6 = [
      HEADER6,
      row(0, '00000000000000000000000000000000:1388', '00000000000000000000000000000000:0000', '0A', 1005),
      row(1, '0000000000000000FFFF00000100007F:1388', '00000000000000000000000000000000:0000', '0A', 1006),
      row(2, '00000000000000000000000001000000:1388', '00000000000000000000000000000000:0000', '0A', 1007), // ::1: not reached from 127.0.0.1
      '',
    ].join('\n');
    expect(loopbackListenerUids(5000, [tcp, tcp6])).toEqual([1000, 1001, 1005, 1006]);
    expect(loopbackListenerUids(5001, [tcp, undefined])).toEqual([1002]);
    expect(loopbackListenerUids(6000, [tcp, tcp6])).toEqual([]);
  });

  it('is undefined where the system has no socket tables (not Linux): nothing can be told', () => {
    expect(loopbackListenerUids(5000, [undefined, undefined])).toBeUndefined();
  });
});
