import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { findKsmdPid, parseNameValueLines, readKsmCounters, readProcessKsmStat } from './ksm-counters.ts';
import { XmeError } from '../util/errors.ts';
import { createFakeKsm } from './testing/fake-ksm-sysfs.ts';
import { parseKnobText } from './ksm-knobs.ts';

const fake = createFakeKsm();
afterAll(() => fake.remove());

describe('KSM counters', () => {
  it('parses "name value" and "name: value" lines', () => {
    const text = 'ksm_rmap_items 12\nksm_zero_pages 0\nksm_merging_pages 7\nksm_process_profit -3840\nksm_merge_any: no\nksm_mergeable: yes\n\n';
    expect(parseNameValueLines(text)).toEqual({
      ksm_rmap_items: '12',
      ksm_zero_pages: '0',
      ksm_merging_pages: '7',
      ksm_process_profit: '-3840',
      ksm_merge_any: 'no',
      ksm_mergeable: 'yes',
    });
  });

  it('reads the sysfs counters from the KSM directory', () => {
    const counters = readKsmCounters();
    expect(counters).toMatchObject({
      pagesShared: 11,
      pagesSharing: 22,
      pagesUnshared: 33,
      pagesVolatile: 44,
      pagesScanned: 55,
      fullScans: 66,
      ksmZeroPages: 77,
      generalProfit: -88,
    });
    // From the real /proc: cow_ksm (Linux 6.x) and ksmd's run time.
    expect(Number.isSafeInteger(counters.cowKsm)).toBe(true);
    expect(Number.isSafeInteger(counters.ksmdCpuNs)).toBe(true);
  });

  it('reads a missing counter as NaN, not 0', () => {
    fs.rmSync(`${fake.sysfs}/ksm_zero_pages`);
    expect(readKsmCounters().ksmZeroPages).toBeNaN();
  });

  it('finds ksmd', () => {
    const pid = findKsmdPid();
    expect(pid).toBeGreaterThan(0);
    expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('ksmd');
  });

  it('reads a process ksm_stat, and names a process that has none', () => {
    const own = readProcessKsmStat(process.pid);
    for (const value of Object.values(own)) expect(Number.isSafeInteger(value)).toBe(true);
    expect(() => readProcessKsmStat(2 ** 22 + 1)).toThrow(XmeError);
  });

  it('reads the selected word of a choice knob', () => {
    expect(parseKnobText('[none] scan-time\n')).toBe('none');
    expect(parseKnobText('none [scan-time]\n')).toBe('scan-time');
    expect(parseKnobText('5000\n')).toBe('5000');
  });
});
