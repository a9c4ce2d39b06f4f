import { describe, expect, it } from 'vitest';
import { mergeableProcesses, mergeableSize } from './mergeable-processes.ts';

describe('mergeable processes', () => {
  it('adds up the mappings whose VmFlags carry "mg"', () => {
    const smaps = [
      '7f0000000000-7f0010000000 rw-p 00000000 00:00 0',
      'Size:             262144 kB',
      'VmFlags: rd wr mr mw me ac sd mg',
      '7f0010000000-7f0010001000 rw-p 00000000 00:00 0',
      'Size:                  4 kB',
      'VmFlags: rd wr mr mw me ac sd',
      '7f0020000000-7f0020200000 rw-p 00000000 00:00 0',
      'Size:               2048 kB',
      'VmFlags: rd wr mg hg',
    ].join('\n');
    expect(mergeableSize(smaps)).toBe(262144 + 2048);
    expect(mergeableSize('Size: 4 kB\nVmFlags: rd wr mgx\n')).toBe(0);
  });

  it('finds nothing of this process itself and reads the real /proc without failing', () => {
    const found = mergeableProcesses(new Set());
    expect(found.some((p) => p.pid === process.pid)).toBe(false);
    for (const p of found) expect(p.mergeableKiB).toBeGreaterThan(0);
  });
});
