import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { parseBandwidth, transferSeconds } from './bandwidth.js';

describe('parseBandwidth', () => {
  it('reads bytes and bits per second with decimal and binary prefixes', () => {
    expect(parseBandwidth('100MB/s').bytesPerSecond).toBe(100e6);
    expect(parseBandwidth('1Gbit/s').bytesPerSecond).toBe(125e6);
    expect(parseBandwidth('500 Mbps').bytesPerSecond).toBe(62.5e6);
    expect(parseBandwidth('50MiB/s').bytesPerSecond).toBe(50 * 1024 ** 2);
    expect(parseBandwidth('1.5GB/s').bytesPerSecond).toBe(1.5e9);
    expect(parseBandwidth('800kB/s').bytesPerSecond).toBe(800e3);
    expect(parseBandwidth('100Mb/s').bytesPerSecond).toBe(12.5e6);
  });

  it('refuses what is not a bandwidth, with the forms it takes', () => {
    for (const bad of ['fast', '100', '100MB', '-1MB/s', '0MB/s', '10 XB/s', '']) {
      const error = (() => {
        try {
          parseBandwidth(bad);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, bad).toBeInstanceOf(InputError);
      expect((error as InputError).hint).toContain('100MB/s');
    }
  });

  it('gives the transfer time', () => {
    expect(transferSeconds(250e6, parseBandwidth('100MB/s'))).toBe(2.5);
  });
});
