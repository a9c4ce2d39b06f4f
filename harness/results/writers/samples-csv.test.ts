/** samples.csv from recorded samples: nothing boots, nothing is measured. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECORDED_RUN, RECORDED_SAMPLES, RECORDED_SAMPLES_CSV, recordedHeader } from '../../testing/recorded-samples.ts';
import { metricsCell, SAMPLE_COLUMNS, sampleRow } from '../samples.ts';
import type { StrategySample } from '../tick-sample.ts';
import { SamplesCsvWriter } from './samples-csv.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-samples-csv-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(samples: typeof RECORDED_SAMPLES): string {
  const writer = new SamplesCsvWriter();
  writer.begin(recordedHeader(dir));
  for (const sample of samples) writer.sample(sample);
  writer.end();
  return fs.readFileSync(path.join(dir, 'samples.csv'), 'utf8');
}

const total = RECORDED_SAMPLES[0] as StrategySample;

describe('samples.csv writer', () => {
  it('writes the recorded samples exactly as the runner always has (header = SAMPLE_COLUMNS)', () => {
    const text = write(RECORDED_SAMPLES);
    expect(text).toBe(RECORDED_SAMPLES_CSV);
    expect(text.split('\n')[0]).toBe(SAMPLE_COLUMNS.join(','));
  });

  it('writes the header alone for a run stopped before its first tick', () => {
    expect(write([])).toBe(`${SAMPLE_COLUMNS.join(',')}\n`);
  });

  it('leaves the cost and strategy columns of a guest row empty, and its throughput in it', () => {
    const guest = RECORDED_SAMPLES[1]!;
    if (guest.scope !== 'guest') throw new Error('recorded sample 1 is a guest sample');
    const row = sampleRow(RECORDED_RUN, { ...guest, workloadOpsPerS: 200 });
    expect(row).toMatchObject({ guest: 'g0', workload_ops_per_s: 200 });
    for (const column of ['cpu_method', 'scan_cpu_ms', 'frames_saved', 'strategy_metrics', 'kernel_code_pages'] as const) expect(row[column]).toBeUndefined();
  });

  it('puts the semantic figures in their own columns and every figure in strategy_metrics (a Xen ledger’s hypercalls too)', () => {
    const xen: StrategySample = {
      ...total,
      strategy: 'semantic',
      sharingMode: 'enforced',
      cowMethod: 'hypervisor',
      cowCount: 'upper bound',
      metrics: { kernel_code_pages: 2048, kernel_code_identical_pages: 2040, hypercalls_total: 4088 },
    };
    const [row] = parse(write([xen]), { columns: true }) as Record<string, string>[];
    expect(row).toMatchObject({
      sharing_mode: 'enforced',
      cow_method: 'hypervisor',
      cow_count: 'upper bound',
      kernel_code_pages: '2048',
      kernel_code_identical_pages: '2040',
      kernel_rodata_pages: '',
      strategy_metrics: 'kernel_code_pages=2048;kernel_code_identical_pages=2040;hypercalls_total=4088',
    });
  });

  it('writes the split of frames saved (zero / within a guest / across guests) into its own columns', () => {
    const split: StrategySample = { ...total, framesSaved: 20, framesSavedZero: 13, framesSavedWithinGuest: 2, framesSavedAcrossGuests: 5 };
    const [row] = parse(write([split]), { columns: true }) as Record<string, string>[];
    expect(row).toMatchObject({ frames_saved: '20', frames_saved_zero: '13', frames_saved_within_guest: '2', frames_saved_across_guests: '5' });
  });

  it('leaves non-finite figures out of the strategy_metrics cell, and the cell empty when none is left', () => {
    expect(metricsCell({ a: 1, b: Number.NaN, c: Infinity, d: 2.5 })).toBe('a=1;d=2.5');
    expect(metricsCell({ b: Number.NaN })).toBeUndefined();
  });

  it('refuses a sample before begin()', () => {
    expect(() => new SamplesCsvWriter().sample(total)).toThrow(/before begin/);
  });
});
