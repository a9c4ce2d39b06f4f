/** A repetition's figures from recorded per-tick numbers: nothing is booted or measured. */
import { describe, expect, it } from 'vitest';
import { XmeError } from '../util/errors.ts';
import { checkDeclarations, repetitionMetrics, undeclaredMetrics, type StrategyRecord } from './repetition-metrics.ts';

const stats = { sharedPages: 50, framesUsed: 20, framesSaved: 30, zeroPagesShared: 10, hostFramesSaved: 5, cowFaults: 6, cowCopies: 4, perGuest: [] };

function record(label: string, name: string, more: Partial<StrategyRecord> = {}): StrategyRecord {
  return {
    label,
    name,
    // The first tick does one-off work: steady state is the ticks after it.
    scanCpu: [100, 2, 4],
    cowCpu: [1, 3],
    verifyCpu: [9, 1, 1],
    tickCpu: [109, 4, 8],
    // tick split: mechanism (scan + verification + CoW model) and instrument (CoW detection), per tick.
    mechanismCpu: [109, 3.5, 5.5],
    cowModelCpu: [0, 0.5, 0.5],
    instrumentCpu: [0, 1, 3],
    refusedScans: 0,
    stats,
    cowMethodDescription: 'content-reread: test',
    lastScanMetrics: {},
    ledgerMetrics: {},
    declared: {},
    ...more,
  };
}

const facts = { guests: 2, memoryMiB: 64, repetition: 2, totalPages: 262144, spanS: 120, opsPerSecond: [100, 300] };

describe('repetition metrics', () => {
  it("gives where sharing came from at the last tick with classes: frames saved by class, and the part of content's savings found", () => {
    const savedByClass = {
      free: 0,
      pagecache: 12,
      shmem: 3,
      anon: 1,
      slab: 0,
      pagetable: 0,
      kernel_text: 9,
      kernel_rodata: 4,
      kernel_data: 0,
      module_text: 1,
      other: 0,
    };
    const [union] = repetitionMetrics(
      [record('semantic-union', 'semantic-union', { lastAttribution: { savedByClass, contentSavedFound: 45, contentFramesSaved: 60 } })],
      facts,
    );
    expect(union!.values).toMatchObject({
      saved_pagecache_frames: 12,
      saved_kernel_text_frames: 9,
      saved_other_frames: 0,
      content_saved_found_frames: 45,
      content_saved_found_pct: 75,
    });
    const [plain] = repetitionMetrics([record('content', 'content')], facts);
    expect(plain!.values.saved_pagecache_frames).toBeUndefined();
    expect(plain!.values.content_saved_found_pct).toBeUndefined();
  });

  it('takes ledger figures from the last tick and CPU as the steady-state mean, the first scan apart', () => {
    const [content] = repetitionMetrics([record('content', 'content')], facts);
    expect(content).toMatchObject({ memoryMiB: 64, repetition: 2, strategy: 'content' });
    expect(content!.values).toEqual({
      shared_pages: 50,
      frames_saved: 30,
      frames_saved_pct: (30 / 262144) * 100,
      host_frames_saved: 5,
      zero_pages_shared: 10,
      cow_faults: 6,
      cow_copies: 4,
      cow_faults_per_min: 3, // 6 faults in 2 minutes
      scan_cpu_ms: 3,
      first_scan_cpu_ms: 100,
      first_scan_cpu_ms_per_guest: 50, // 2 guests
      scan_cpu_ms_per_gib: 3, // 262144 pages = 1 GiB
      cow_cpu_ms: 2,
      verify_cpu_ms: 1,
      tick_cpu_ms: 6,
      mechanism_cpu_ms: 4.5,
      mechanism_cpu_ms_per_guest: 2.25,
      cow_model_cpu_ms: 0.5,
      instrument_cpu_ms: 2,
      cpu_ms_per_s: 0.1, // (4 + 8) ms over the 120 s between the first and the last tick
      refused_scans: 0,
      workload_ops_per_s: 200,
    });
    expect(content!.methods!.cow_faults).toBe('content-reread: test');
    const [scaled] = repetitionMetrics([record('content', 'content')], { ...facts, bootS: 12.5, firstResultS: 20, harnessMemoryMiB: 300 });
    expect(scaled!.values).toMatchObject({ boot_s: 12.5, first_result_s: 20, harness_memory_mib: 300 });
    expect(content!.methods!.mechanism_cpu_ms).toBeUndefined(); // METRICS' own method: the CoW handling is in
  });

  it('says when the mechanism lacks the CoW handling (no per-fault cost measured), and leaves cow_model_cpu_ms out', () => {
    const [content] = repetitionMetrics([record('content', 'content', { cowModelCpu: [] })], facts);
    expect(content!.values.cow_model_cpu_ms).toBeUndefined();
    expect(content!.methods!.mechanism_cpu_ms).toMatch(/CoW handling NOT included: no per-fault cost was measured \(run.json cowFaultCost/);
  });

  it('gives the mechanism ratio against semantic, apart from the whole tick’s', () => {
    const [, content] = repetitionMetrics(
      [record('semantic', 'semantic', { tickCpu: [50, 2, 2], mechanismCpu: [50, 0.5, 1.5] }), record('content', 'content')],
      facts,
    );
    // content: mechanism 4.5 ms over semantic's 1 ms; whole tick 6 ms over 2 ms.
    expect(content!.values).toMatchObject({ mechanism_cpu_ratio_vs_semantic: 4.5, tick_cpu_ratio_vs_semantic: 3 });
  });

  it('gives CPU ratios against semantic (by label, else by name) to every other strategy', () => {
    const [semantic, content] = repetitionMetrics(
      [record('semantic', 'semantic', { scanCpu: [50, 1, 1], tickCpu: [50, 2, 2] }), record('content', 'content')],
      facts,
    );
    expect(semantic!.values.scan_cpu_ratio_vs_semantic).toBeUndefined();
    expect(content!.values).toMatchObject({ scan_cpu_ratio_vs_semantic: 3, tick_cpu_ratio_vs_semantic: 3 });
    const [, other] = repetitionMetrics([record('xme', 'semantic', { scanCpu: [1, 1, 1], tickCpu: [1, 2, 2] }), record('content', 'content')], facts);
    expect(other!.values.tick_cpu_ratio_vs_semantic).toBe(3);
  });

  it('leaves out what was not measured instead of making NaN (one tick, no span, semantic at 0 ms)', () => {
    const [semantic, content] = repetitionMetrics(
      [
        record('semantic', 'semantic', { scanCpu: [0], tickCpu: [0], cowCpu: [], verifyCpu: [0] }),
        record('content', 'content', { scanCpu: [5], tickCpu: [5], cowCpu: [], verifyCpu: [1] }),
      ],
      { ...facts, spanS: 0, opsPerSecond: [] },
    );
    for (const metrics of [semantic!, content!]) {
      for (const value of Object.values(metrics.values)) if (value !== undefined) expect(Number.isFinite(value)).toBe(true);
      expect(metrics.values).toMatchObject({ cow_faults_per_min: undefined, cow_cpu_ms: undefined, workload_ops_per_s: undefined });
    }
    expect(content!.values).toMatchObject({ scan_cpu_ms: 5, first_scan_cpu_ms: 5, scan_cpu_ratio_vs_semantic: undefined });
  });

  it('computes kernel shareability from the last scan’s figures', () => {
    const [semantic] = repetitionMetrics(
      [
        record('semantic', 'semantic', {
          lastScanMetrics: { kernel_code_pages: 200, kernel_code_identical_pages: 199, kernel_rodata_pages: 100, kernel_rodata_identical_pages: 50 },
        }),
      ],
      facts,
    );
    expect(semantic!.values).toMatchObject({ kernel_code_shareability_pct: 99.5, kernel_rodata_shareability_pct: 50 });
    const [refused] = repetitionMetrics([record('semantic', 'semantic', { lastScanMetrics: undefined })], facts);
    expect(refused!.values.kernel_code_shareability_pct).toBeUndefined();
  });

  it('carries the declared figures of the strategy and the ledger with their unit and method, and only those', () => {
    const [xen] = repetitionMetrics(
      [
        record('semantic', 'semantic', {
          lastScanMetrics: { kernel_code_pages: 200, surprise: 1 },
          ledgerMetrics: { hypercalls_total: 400 },
          declared: { kernel_code_pages: { unit: 'pages', method: 'from System.map' }, hypercalls_total: { unit: 'hypercalls', method: 'counted' } },
        }),
      ],
      facts,
    );
    expect(xen!.declared).toEqual({
      kernel_code_pages: { value: 200, unit: 'pages', method: 'from System.map; value at the last tick' },
      hypercalls_total: { value: 400, unit: 'hypercalls', method: 'counted; value at the last tick' },
    });
    expect(undeclaredMetrics({ kernel_code_pages: 1, surprise: 1 }, { kernel_code_pages: { unit: 'pages', method: 'm' } })).toEqual(['surprise']);
  });

  it('refuses a declared figure named like one of the runner’s own', () => {
    expect(() => checkDeclarations('strategy x', { shared_pages: { unit: 'pages', method: 'm' } })).toThrow(XmeError);
    expect(() => checkDeclarations('strategy x', { distinct_hashes: { unit: 'hashes', method: 'm' } })).not.toThrow();
  });
});
