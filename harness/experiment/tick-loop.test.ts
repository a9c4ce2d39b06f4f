/**
 * The tick loop on in-memory stand-in guests (harness/testing/fake-backend.ts): CoW counting between ticks,
 * the rotated scoring order, the samples' shape, a summary without NaN, stopping and a guest that dies.
 * The same loop on real QEMU guests: runner.e2e.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { FakeBackend, fakeImage, type FakeBackendOptions, type FakeGuest } from '../testing/fake-backend.ts';
import { fakeRepetitionInput } from '../testing/fake-repetition.ts';
import { XmeError } from '../util/errors.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { summaryRows } from './summary.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import type { StrategySample, TickSample } from '../results/tick-sample.ts';
import { runRepetition, strategyOrder } from './tick-loop.ts';
import type { Backend, HypervisorCounters } from '../backends/types.ts';
import type { CowFaultCosts } from '../sharing/ledger.ts';
import type { MeasuredCowFaultCost } from '../host/cow-break.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

const PAGES = 8;
const STRATEGIES = ['content', { name: 'content', label: 'content-nz', options: { zeroPages: false } }, 'semantic'];

/** Pages 0–3 identical in every guest, 4–7 each guest's own: 4 pages per guest to share, no zero page. */
function boot(guest: FakeGuest, index: number): void {
  for (let gfn = 0; gfn < PAGES; gfn++) guest.fill(gfn, gfn < 4 ? gfn + 1 : 100 + index * 10 + gfn);
}

/** g1 overwrites shared page 2 once it has been scored at tick 0; every guest reports 200 ops/s of guest time. */
function workload(guest: FakeGuest, resumes: number): void {
  if (guest.id === 'g1' && resumes === 1) guest.fill(2, 222);
  guest.workloadProgress.push({ tMs: resumes * 1000, ops: resumes * 200 });
}

interface Run {
  samples: TickSample[];
  metrics: RepetitionMetrics[] | undefined;
  guests: FakeGuest[];
  notes: string[];
  warnings: string[];
  pausedWhileScored: boolean;
}

async function run(
  options: {
    ticks?: number;
    fake?: FakeBackendOptions;
    stopAfterTick?: number;
    strategies?: unknown[];
    cowFaultCosts?: CowFaultCosts;
    /** Makes the backend an enforcing one (share + counters), as Xen is. */
    enforcer?: Pick<Backend, 'share' | 'counters'>;
  } = {},
): Promise<Run> {
  const ticks = options.ticks ?? 2;
  const scenario = parseScenario({
    name: 'tick-loop',
    guests: 2,
    memoryMiB: 64,
    durationS: ticks * 0.01,
    tickS: 0.01,
    workload: { name: 'memchurn' },
    strategies: options.strategies ?? STRATEGIES,
  });
  const backend = new FakeBackend({ memoryPages: PAGES, boot, workload, ...options.fake });
  const guests = await backend.provision(fakeImage(), scenario.guests[0]!, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
  const result: Run = { samples: [], metrics: undefined, guests, notes: [], warnings: [], pausedWhileScored: true };
  result.metrics = await runRepetition(
    fakeRepetitionInput({
      scenario,
      backend: options.enforcer ? { enforcesSharing: true, ...options.enforcer } : backend,
      guests,
      ...(options.cowFaultCosts ? { cowFaultCosts: options.cowFaultCosts } : {}),
      hasher,
      emit: (sample) => {
        result.samples.push(sample);
        if (!guests.every((g) => g.paused)) result.pausedWhileScored = false;
      },
      note: (text) => result.notes.push(text),
      warn: (text) => result.warnings.push(text),
      stopRequested: () => options.stopAfterTick !== undefined && result.samples.some((s) => s.tick === options.stopAfterTick),
    }),
  );
  return result;
}

const totals = (samples: TickSample[], strategy: string) => samples.filter((s): s is StrategySample => s.scope === 'all' && s.strategy === strategy);

describe('tick loop on fake guests', () => {
  let result: Run;
  beforeAll(async () => {
    result = await run();
  });

  it('gives one sample per tick × strategy × (all, each guest), strategies in rotated order, guests paused', () => {
    const order = (tick: number) => result.samples.filter((s) => s.tick === tick).map((s) => `${s.strategy}/${s.scope === 'all' ? 'all' : s.guest}`);
    const rows = (strategy: string) => [`${strategy}/all`, `${strategy}/g0`, `${strategy}/g1`];
    expect(order(0)).toEqual([...rows('content'), ...rows('content-nz'), ...rows('semantic')]);
    expect(order(1)).toEqual([...rows('content-nz'), ...rows('semantic'), ...rows('content')]);
    expect(order(2)).toEqual([...rows('semantic'), ...rows('content'), ...rows('content-nz')]);
    expect(result.samples).toHaveLength(3 * 3 * 3);
    expect(result.pausedWhileScored).toBe(true);
    expect(result.guests.every((g) => !g.paused && g.resumes === 3)).toBe(true);
  });

  it('shares the identical pages at tick 0 and counts one CoW fault, in g1, for the page g1 wrote after it', () => {
    const [t0, t1, t2] = totals(result.samples, 'content');
    expect(t0).toMatchObject({ guestPages: 16, sharedPages: 8, framesSaved: 4, zeroPagesShared: 0, cowFaultsTick: 0, cowFaultsTotal: 0, status: 'ok' });
    // g0's page 2 stays in shared state (a lone survivor, until it is written): 7 shared, on 4 frames.
    expect(t1).toMatchObject({ sharedPages: 7, framesSaved: 3, cowFaultsTick: 1, cowFaultsTotal: 1, cowCopiesTotal: 1 });
    expect(t2).toMatchObject({ sharedPages: 7, cowFaultsTick: 0, cowFaultsTotal: 1 });
    const guestAt1 = result.samples.filter((s) => s.tick === 1 && s.strategy === 'content' && s.scope === 'guest');
    expect(guestAt1.map((s) => [s.scope === 'guest' && s.guest, s.sharedPages, s.cowFaultsTick, s.cowFaultsTotal])).toEqual([
      ['g0', 4, 0, 0],
      ['g1', 3, 1, 1],
    ]);
    expect(totals(result.samples, 'content-nz')[1]).toMatchObject({ cowFaultsTotal: 1 });
  });

  it('carries the ledger’s mode and CoW method, the costs and the strategy’s figures', () => {
    for (const sample of result.samples) {
      expect(sample).toMatchObject({ sharingMode: 'accounted', cowMethod: 'content-reread', cowCount: 'lower bound', memoryMiB: 64, repetition: 1 });
    }
    for (const [tick, sample] of totals(result.samples, 'content').entries()) {
      const { cost } = sample;
      expect(cost.cowCpuMs === undefined).toBe(tick === 0); // nothing was shared before tick 0
      expect(cost.tickCpuMs).toBeCloseTo((cost.cowCpuMs ?? 0) + cost.scanCpuMs + cost.verifyCpuMs, 9);
      expect(cost.scanCpuMs).toBeGreaterThan(0);
      // Every page is read; a page equal to the previous guest's page at the same gfn is confirmed by compare
      // and not hashed (strategies/content-index.ts), so at most every page is hashed.
      expect(cost.pagesRead).toBe(16);
      expect(cost.bytesHashed).toBeGreaterThan(0);
      expect(cost.bytesHashed).toBeLessThanOrEqual(16 * 4096);
      // How the pass ran (threads: 1 for guests this small; its wall time) beside what it found.
      const { pass_wall_ms, ...figures } = sample.metrics;
      expect(figures).toEqual({ zero_pages: 0, distinct_hashes: tick === 0 ? 12 : 13, scan_threads: 1, scan_worker_cpu_ms: 0 });
      expect(pass_wall_ms).toBeGreaterThan(0);
    }
    const ticks = totals(result.samples, 'content').map((s) => s.tS);
    expect(ticks).toEqual([...ticks].sort((a, b) => a - b));
  });

  it('records a refusal as a status, not an error', () => {
    for (const sample of result.samples.filter((s) => s.strategy === 'semantic')) {
      expect(sample.status).toMatch(/^refused: System.map does not match the kernel running in guest g0/);
      expect(sample.sharedPages).toBe(0);
    }
  });

  it('measures the workload’s ops/s from the guests’ progress lines (from the second line on)', () => {
    const rates = (tick: number) => result.samples.filter((s) => s.tick === tick && s.scope === 'guest').map((s) => s.scope === 'guest' && s.workloadOpsPerS);
    expect(rates(1).every((r) => r === undefined)).toBe(true);
    expect(rates(2).every((r) => r === 200)).toBe(true);
  });

  it('gives per-strategy figures that summarise without NaN', () => {
    const metrics = result.metrics!;
    expect(metrics.map((m) => m.strategy)).toEqual(['content', 'content-nz', 'semantic']);
    const content = metrics[0]!;
    expect(content.values).toMatchObject({ shared_pages: 7, frames_saved: 3, cow_faults: 1, refused_scans: 0, workload_ops_per_s: 200 });
    expect(content.values.scan_cpu_ratio_vs_semantic).toBeGreaterThan(0);
    expect(content.declared).toMatchObject({ zero_pages: { value: 0, unit: 'pages' }, distinct_hashes: { value: 13, unit: 'hashes' } });
    expect(metrics[2]!.values.refused_scans).toBe(3);
    const rows = summaryRows({ name: 'tick-loop' }, metrics);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(Number.isFinite(row.mean)).toBe(true);
    // Nothing undeclared, nothing refused; a tick that came late on a busy test host is the only warning allowed.
    expect(result.warnings.filter((w) => !/came late/.test(w))).toEqual([]);
  });
});

/** A per-fault cost as harness/host/cow-break.ts measures it (the value made up here: this test measures nothing). */
function measuredCost(nsPerFault: number): MeasuredCowFaultCost {
  return {
    status: 'measured',
    value: nsPerFault,
    unit: 'ns CPU per CoW fault',
    wallNsPerFault: nsPerFault,
    method: 'test',
    measuredAt: '2026-12-01T00:00:00.000Z',
    host: { bootId: 'test', kernelRelease: 'test' },
    programDigest: 'test',
    trials: [],
    source: 'test',
  };
}

/** Burns about `ms` of this thread's CPU (a stand-in for work whose cost must land on the right side). */
function burn(ms: number): void {
  const end = threadCpuNs() + BigInt(Math.round(ms * 1e6));
  while (threadCpuNs() < end) {
    // spin
  }
}

describe('tick loop: mechanism and instrument', () => {
  it('splits each tick of a harness-thread strategy into mechanism (scan + apply) and instrument (CoW re-read, fingerprints of new frames) that add up to tick_cpu_ms', async () => {
    const { samples, metrics } = await run({ strategies: ['content', 'semantic'] });
    for (const strategy of ['content', 'semantic']) {
      for (const { tick, cost } of totals(samples, strategy)) {
        // No per-fault cost was given: the CoW model is left empty, never a constant.
        expect(cost.cowModelCpuMs).toBeUndefined();
        expect(cost.residencyCpuMs).toBeUndefined(); // these guests report no residency
        // Of apply, the fingerprints of the frames it made (their hash for the CoW re-read, their zero test) are
        // the instrument's: the instrument is the CoW re-read plus those, the mechanism the rest.
        const applyInstrument = cost.instrumentCpuMs - (tick === 0 ? 0 : cost.cowCpuMs!);
        expect(applyInstrument).toBeGreaterThanOrEqual(0);
        expect(applyInstrument).toBeLessThanOrEqual(cost.verifyCpuMs);
        if (tick === 0) expect(applyInstrument).toBeGreaterThan(0); // every group is new at the first tick
        expect(cost.mechanismCpuMs).toBeCloseTo(cost.scanCpuMs + cost.verifyCpuMs - applyInstrument, 9);
        expect(cost.mechanismCpuMs + cost.instrumentCpuMs).toBeCloseTo(cost.tickCpuMs, 9);
      }
    }
    const content = metrics!.find((m) => m.strategy === 'content')!;
    expect(content.values.mechanism_cpu_ms! + content.values.instrument_cpu_ms!).toBeCloseTo(content.values.tick_cpu_ms!, 9);
    expect(content.values.cow_model_cpu_ms).toBeUndefined();
    expect(content.values.mechanism_cpu_ratio_vs_semantic).toBeGreaterThan(0);
    expect(content.methods!.mechanism_cpu_ms).toMatch(/CoW handling NOT included/);
  });

  it('models the CoW handling as faults × the measured per-fault cost, exactly, and adds it to the mechanism', async () => {
    const { samples, metrics } = await run({ strategies: ['content'], cowFaultCosts: { 'linux-ksm-cow-break': measuredCost(2500) } });
    const ticks = totals(samples, 'content');
    expect(ticks.map((s) => s.cowFaultsTick)).toEqual([0, 1, 0]); // g1 writes one shared page after tick 0
    for (const { cowFaultsTick, cost } of ticks) {
      expect(cost.cowModelCpuMs).toBe((cowFaultsTick * 2500) / 1e6);
      expect(cost.mechanismCpuMs + cost.instrumentCpuMs).toBeCloseTo(cost.tickCpuMs + cost.cowModelCpuMs!, 9);
    }
    expect(ticks[1]!.cost.cowModelCpuMs).toBe(0.0025);
    expect(metrics![0]!.values.cow_model_cpu_ms).toBe(0.0025 / 2); // steady state: ticks 1 and 2
    expect(metrics![0]!.methods?.mechanism_cpu_ms).toBeUndefined(); // the CoW handling is in: METRICS' own method
  });

  it('bills the residency snapshot to the instrument, once per tick on every strategy’s row', async () => {
    const { samples } = await run({
      ticks: 1,
      strategies: ['content', 'semantic'],
      cowFaultCosts: { 'linux-ksm-cow-break': measuredCost(1000) },
      fake: {
        boot: (guest, index) => {
          boot(guest, index);
          guest.hostResidency = {
            residentPages: () => {
              burn(1);
              return new Uint8Array(PAGES).fill(1);
            },
          };
        },
      },
    });
    for (const tick of [0, 1]) {
      const rows = samples.filter((s): s is StrategySample => s.scope === 'all' && s.tick === tick);
      expect(rows).toHaveLength(2);
      const [first, second] = rows;
      expect(first!.cost.residencyCpuMs).toBeGreaterThanOrEqual(2); // 2 guests × 1 ms
      expect(second!.cost.residencyCpuMs).toBe(first!.cost.residencyCpuMs);
      for (const { cost } of rows)
        expect(cost.mechanismCpuMs + cost.instrumentCpuMs).toBeCloseTo(cost.tickCpuMs + cost.cowModelCpuMs! + cost.residencyCpuMs!, 9);
    }
  });

  it('bills an enforcing ledger’s counter reads to the instrument and its share calls to the mechanism; its CoW model is Xen’s', async () => {
    let shared = [0, 0];
    const enforcer: Pick<Backend, 'share' | 'counters'> = {
      share: (_guests, groups) => {
        burn(1); // the sharing hypercalls: the mechanism's
        shared = [0, 0];
        for (const group of groups) for (const page of group) shared[page.guest]!++;
        return Promise.resolve({ shared: groups, failed: [], hypercalls: groups.length });
      },
      counters: (): Promise<HypervisorCounters> => {
        burn(2); // reading the hypervisor's counters: the instrument's
        return Promise.resolve({ sharedPagesPerGuest: [...shared], freedFrames: 0, usedFrames: 0 });
      },
    };
    const linuxOnly = await run({ strategies: ['content'], enforcer, cowFaultCosts: { 'linux-ksm-cow-break': measuredCost(2500) } });
    for (const { tick, cost } of totals(linuxOnly.samples, 'content')) {
      expect(cost.cowModelCpuMs).toBeUndefined(); // Linux's CoW break is not Xen's unshare (a slot: enforced-ledger.ts)
      // apply: the verifier's re-read and one counter read (2 ms) are observation; detectCow (tick > 0) reads the counters again.
      expect(cost.instrumentCpuMs - (cost.cowCpuMs ?? 0)).toBeGreaterThanOrEqual(2);
      if (tick > 0) expect(cost.cowCpuMs).toBeGreaterThanOrEqual(2);
      expect(cost.mechanismCpuMs).toBeGreaterThanOrEqual(1); // the share calls
      expect(cost.mechanismCpuMs).toBeLessThan(cost.scanCpuMs + cost.verifyCpuMs - 1.9);
      expect(cost.mechanismCpuMs + cost.instrumentCpuMs).toBeCloseTo(cost.tickCpuMs, 9);
    }
    const xen = await run({ strategies: ['content'], enforcer, cowFaultCosts: { 'xen-unshare': measuredCost(9000) } });
    for (const { cowFaultsTick, cost } of totals(xen.samples, 'content')) expect(cost.cowModelCpuMs).toBe((cowFaultsTick * 9000) / 1e6);
  });
});

describe('tick loop: edges', () => {
  it('counts host-resident pages and the frames a host would free, where guests report holes', async () => {
    // g0's pages 6–7 are holes (zeros, never read); g1 backs all.
    const { samples } = await run({
      ticks: 1,
      strategies: ['content'],
      fake: {
        boot: (guest, index) => {
          boot(guest, index);
          if (index === 0) {
            guest.pages(6, 2).fill(0);
            guest.hostResidency = { residentPages: () => Uint8Array.from({ length: PAGES }, (_, gfn) => (gfn < 6 ? 1 : 0)) };
          } else guest.hostResidency = { residentPages: () => new Uint8Array(PAGES).fill(1) };
        },
      },
    });
    const [total, g0, g1] = samples.filter((s) => s.tick === 0);
    expect(total).toMatchObject({ scope: 'all', hostResidentPages: 14, sharedPages: 10, zeroPagesShared: 2, hostFramesSaved: 4 });
    expect(total!.scope === 'all' && total!.cost.pagesRead).toBe(14); // the holes were not read
    expect([g0!.hostResidentPages, g1!.hostResidentPages]).toEqual([6, 8]);
  });

  it('stops when asked, keeping the ticks scored so far', async () => {
    const { samples, metrics } = await run({ ticks: 5, stopAfterTick: 1 });
    expect([...new Set(samples.map((s) => s.tick))]).toEqual([0, 1]);
    expect(metrics).toHaveLength(3);
  });

  it('gives no sample and no figures when stopped before the first tick', async () => {
    expect(await runStoppedAtOnce()).toBeUndefined();
  });

  it('ends the repetition with an error naming the guest that stopped', async () => {
    const error = await run({ fake: { workload: (guest) => guest.id === 'g1' && guest.stop() } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(XmeError);
    expect((error as Error).message).toBe('guest g1 stopped during the run');
  });
});

async function runStoppedAtOnce(): Promise<RepetitionMetrics[] | undefined> {
  const scenario = parseScenario({ name: 'stopped', guests: 1, memoryMiB: 64, durationS: 1, tickS: 1, strategies: ['content'] });
  const backend = new FakeBackend({ memoryPages: PAGES });
  const guests = await backend.provision(fakeImage(), 1, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
  const samples: TickSample[] = [];
  const metrics = await runRepetition(
    fakeRepetitionInput({
      scenario,
      backend,
      guests,
      hasher,
      emit: (sample) => samples.push(sample),
      stopRequested: () => true,
    }),
  );
  expect(samples).toEqual([]);
  return metrics;
}

describe('strategy order', () => {
  it('rotates by one every tick', () => {
    expect([0, 1, 2, 3].map((tick) => strategyOrder(['a', 'b', 'c'], tick).join(''))).toEqual(['abc', 'bca', 'cab', 'abc']);
    expect(strategyOrder([], 3)).toEqual([]);
  });

  it('lets the guests run at least half a tick after a scoring that took longer than a tick', async () => {
    const resumedAt: number[] = [];
    const scoredAt: number[] = [];
    const warnings: string[] = [];
    const scenario = parseScenario({
      name: 'slow-host',
      guests: 1,
      memoryMiB: 64,
      durationS: 0.8,
      tickS: 0.4,
      workload: { name: 'memchurn' },
      strategies: ['content'],
    });
    const backend = new FakeBackend({ memoryPages: PAGES, boot, workload: () => resumedAt.push(Date.now()) });
    const guests = await backend.provision(fakeImage(), 1, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
    await runRepetition(
      fakeRepetitionInput({
        scenario,
        backend,
        guests,
        hasher,
        emit: (sample) => {
          if (sample.scope !== 'all') return;
          scoredAt.push(Date.now());
          if (sample.tick === 0) for (const end = Date.now() + 1700; Date.now() < end; ); // tick 0 is slow: 1.7 s > tickS
        },
        warn: (text) => warnings.push(text),
      }),
    );
    expect(scoredAt).toHaveLength(3); // no tick lost
    // Tick 1 was due at 0.4 s, while tick 0 was still scored (1.7 s); it waited for the guest to run 0.2 s.
    expect(scoredAt[1]! - resumedAt[0]!).toBeGreaterThanOrEqual(195);
    expect(warnings).toContainEqual(expect.stringMatching(/came late/));
  });
});
