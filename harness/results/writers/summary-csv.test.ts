/** summary.csv from a recorded ending: nothing boots. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordedHeader } from '../../testing/recorded-samples.ts';
import { SUMMARY_COLUMNS, type RepetitionMetrics } from '../summary.ts';
import { summaryRows } from '../../experiment/summary.ts';
import type { RunEnd } from '../run.ts';
import { SummaryCsvWriter } from './summary-csv.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-summary-csv-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const repetitions: RepetitionMetrics[] = [1, 2].map((repetition) => ({
  guests: 2,
  memoryMiB: 64,
  repetition,
  strategy: 'content',
  values: { shared_pages: 28 + repetition, cow_faults: 1 },
  methods: { cow_faults: 'content-reread (test)' },
  declared: { distinct_hashes: { value: 12, unit: 'hashes', method: 'distinct page hashes; value at the last tick' } },
}));

function end(summary: RunEnd['summary']): RunEnd {
  return {
    status: 'completed',
    endedAt: '2026-11-27T13:45:00.000Z',
    backend: undefined,
    sharingModes: ['accounted'],
    cowMethods: [],
    repetitions,
    summary,
    overhead: undefined,
    warnings: [],
    notes: [],
  };
}

function written(summary: RunEnd['summary']): string | undefined {
  const writer = new SummaryCsvWriter();
  writer.begin(recordedHeader(dir));
  writer.end(end(summary));
  const file = path.join(dir, 'summary.csv');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

describe('summary.csv writer', () => {
  it('writes one line per summary row, declared figures with their own unit and method', () => {
    expect(written(summaryRows({ name: 'golden' }, repetitions))).toBe(
      [
        SUMMARY_COLUMNS.join(','),
        'golden,2,64,content,shared_pages,pages,2,29.5,0.707107,23.1469,35.8531,"at the last tick: guest pages in shared state (mapped to a shared frame, not written since; a lone survivor of a written pair included, as Xen counts shr_pages)"',
        'golden,2,64,content,cow_faults,faults,2,1,0,1,1,content-reread (test)',
        'golden,2,64,content,distinct_hashes,hashes,2,12,0,12,12,distinct page hashes; value at the last tick',
        '',
      ].join('\n'),
    );
  });

  it('writes the header alone when no repetition completed (an early interruption)', () => {
    expect(written([])).toBe(`${SUMMARY_COLUMNS.join(',')}\n`);
  });

  it('writes nothing when the summary could not be made (the run failed; run.json says why)', () => {
    expect(written(undefined)).toBeUndefined();
  });

  it('replaces a summary.csv left in the folder', () => {
    fs.writeFileSync(path.join(dir, 'summary.csv'), 'stale\n');
    expect(written([])).toBe(`${SUMMARY_COLUMNS.join(',')}\n`);
  });
});
