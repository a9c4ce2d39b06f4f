import { describe, expect, it } from 'vitest';
import { PeakMemory, processMemory } from './process-memory.ts';

describe('the harness process memory', () => {
  it('grows by what this process allocates and touches, and the peak keeps the highest', () => {
    const peak = new PeakMemory();
    peak.sample();
    const before = processMemory();
    const buffer = Buffer.alloc(256 * 2 ** 20, 1); // 256 MiB, every page written
    peak.sample();
    const after = processMemory();
    expect(after.anonMiB - before.anonMiB).toBeGreaterThan(200);
    expect(after.rssMiB).toBeGreaterThanOrEqual(after.anonMiB);
    expect(peak.value!.anonMiB).toBeGreaterThanOrEqual(after.anonMiB - 1);
    expect(buffer[buffer.length - 1]).toBe(1);
  });
});
