/**
 * Page classes in the tick loop, on stand-in guests with a crafted class source
 * (harness/testing/crafted-page-classes.ts): taken once per tick at the pause whatever the number of strategies
 * reading them, only when one does, billed whole to each of those (in scan, tick and mechanism CPU) and to no
 * other; a refusal reaches the strategies as their status; reclaimed free frames and reclaim faults reach the
 * samples, samples.csv and the repetition's metrics apart from the shared figures.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { FakeBackend, fakeImage, type FakeGuest } from '../testing/fake-backend.ts';
import { fakeRepetitionInput } from '../testing/fake-repetition.ts';
import { CraftedClassSource, craftedClasses, craftedFile, type CraftedFrame } from '../testing/crafted-page-classes.ts';
import { parseScenario } from '../scenario/scenario.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import type { StrategySample, TickSample } from '../results/tick-sample.ts';
import { sampleRow } from '../results/samples.ts';
import { runRepetition } from './tick-loop.ts';
import type { PageClassesOrRefusal } from './tick-page-classes.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

const PAGES = 16;
const SPIN_MS = 3;
/** Per guest, the part of the classification said to be its "guest changed" check (2 guests: 2 ms of the 3). */
const CHECK_MS = 1;

/** Frames 0–3 hold pages 0–3 of one file in both guests, equal but page 3; frames 10 and 11 are free. */
function boot(guest: FakeGuest, index: number): void {
  for (let gfn = 0; gfn < PAGES; gfn++) guest.fill(gfn, gfn === 3 || gfn >= 8 ? 100 + index * 10 + gfn : gfn + 1);
}

/** Call 0: as booted; call 1: g0 allocated free frame 10; call 2 on: refused. */
function classesAt(guests: readonly { id: string }[], call: number): PageClassesOrRefusal {
  if (call >= 2) return { refused: 'guest g1: page classes refused (guest changed): 3 struct pages changed while the classes were read' };
  return {
    guests: guests.map((guest, g) => {
      const spec: Record<number, CraftedFrame> = { 10: { kind: 'free' }, 11: { kind: 'free' } };
      for (let index = 0; index < 4; index++) spec[index] = { kind: 'pagecache', file: 0, index };
      if (call === 1 && g === 0) spec[10] = { kind: 'anon' };
      const classes = craftedClasses(guest.id, PAGES, spec, [craftedFile()]);
      classes.checkCpuMs = CHECK_MS; // as if its "guest changed" check had taken this much of the spin
      return classes;
    }),
  };
}

async function run(strategies: unknown[]) {
  const scenario = parseScenario({ name: 'classes', guests: 2, memoryMiB: 64, durationS: 0.02, tickS: 0.01, workload: { name: 'idle' }, strategies });
  const backend = new FakeBackend({ memoryPages: PAGES, boot });
  const guests = await backend.provision(fakeImage(), 2, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
  const source = new CraftedClassSource(classesAt, SPIN_MS);
  const samples: TickSample[] = [];
  const warnings: string[] = [];
  const metrics = await runRepetition(
    fakeRepetitionInput({
      scenario,
      backend,
      guests,
      hasher,
      emit: (sample) => samples.push(sample),
      warn: (text) => warnings.push(text),
      pageClassSource: source,
    }),
  );
  const totals = (label: string) => samples.filter((s): s is StrategySample => s.scope === 'all' && s.strategy === label);
  return { source, samples, totals, metrics: metrics as RepetitionMetrics[], warnings };
}

describe('page classes in the tick loop', () => {
  let result: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    result = await run(['semantic-pagecache', 'semantic-free', 'content']);
  });

  it('are taken once per tick, guests paused, for the two strategies that read them', () => {
    expect(result.source.calls).toBe(3);
    expect(result.source.paused).toEqual([true, true, true]);
  });

  it('bill the classification whole to each strategy that reads them, and to no other', () => {
    for (const label of ['semantic-pagecache', 'semantic-free']) {
      for (const sample of result.totals(label)) {
        const { cost } = sample;
        expect(cost.classifyCpuMs, label).toBeGreaterThanOrEqual(SPIN_MS);
        expect(cost.scanCpuMs).toBeGreaterThanOrEqual(cost.classifyCpuMs!);
        expect(cost.tickCpuMs).toBeCloseTo((cost.cowCpuMs ?? 0) + cost.scanCpuMs + cost.verifyCpuMs, 9);
        // Less the "guest changed" check, which is the instrument's (next test).
        expect(cost.mechanismCpuMs + (cost.classifyCheckCpuMs ?? 0)).toBeGreaterThanOrEqual(cost.classifyCpuMs!);
        expect(sampleRow({ runId: 'r', scenario: { name: 'classes' } }, sample).classify_cpu_ms).toBe(cost.classifyCpuMs);
      }
    }
    for (const sample of result.totals('content')) expect(sample.cost.classifyCpuMs).toBeUndefined();
    const content = result.metrics.find((m) => m.strategy === 'content')!;
    expect(content.values.classify_cpu_ms).toBeUndefined();
    expect(result.metrics.find((m) => m.strategy === 'semantic-free')!.values.classify_cpu_ms).toBeGreaterThanOrEqual(SPIN_MS);
  });

  it('move the classification’s "guest changed" checks from the mechanism to the instrument, all guests summed', () => {
    for (const label of ['semantic-pagecache', 'semantic-free']) {
      for (const sample of result.totals(label).slice(0, 2)) {
        const { cost } = sample;
        expect(cost.classifyCheckCpuMs, label).toBe(2 * CHECK_MS);
        expect(cost.instrumentCpuMs).toBeGreaterThanOrEqual(2 * CHECK_MS);
        // Mechanism + instrument still hold the whole tick's work: what left the one went to the other.
        expect(cost.mechanismCpuMs + 2 * CHECK_MS).toBeGreaterThanOrEqual(cost.classifyCpuMs!);
        expect(cost.mechanismCpuMs).toBeLessThan(cost.scanCpuMs + cost.verifyCpuMs - 2 * CHECK_MS + 1e-9);
        expect(sampleRow({ runId: 'r', scenario: { name: 'classes' } }, sample).classify_check_cpu_ms).toBe(2 * CHECK_MS);
      }
    }
    for (const sample of result.totals('content')) expect(sample.cost.classifyCheckCpuMs).toBeUndefined();
    // The steady ticks' mean: tick 1 checked both guests, tick 2 was refused before any check.
    expect(result.metrics.find((m) => m.strategy === 'semantic-free')!.values.classify_check_cpu_ms).toBe(CHECK_MS);
  });

  it('let the key propose and the ledger decide: page 3 differs and is counted as the key’s refusal', () => {
    const [t0, t1, t2] = result.totals('semantic-pagecache');
    expect(t0).toMatchObject({ status: 'ok', sharedPages: 6, framesSaved: 3, refusedPages: 2 });
    expect(t0!.metrics).toMatchObject({ pagecache_key_groups: 4, pagecache_key_pages: 8, pagecache_key_refused_pages: 2 });
    expect(t1!.metrics).toMatchObject({ pagecache_key_refused_pages: 2 });
    expect(t2).toMatchObject({ status: 'refused: guest g1: page classes refused (guest changed): 3 struct pages changed while the classes were read' });
    expect(t2).toMatchObject({ sharedPages: 6 }); // pages shared before stay shared until written
    // summary.csv takes the last tick's figures: a refused scan reports none.
    expect(result.metrics.find((m) => m.strategy === 'semantic-pagecache')!.declared).toEqual({});
  });

  it('reclaim the free frames apart, count a reclaim fault for the frame allocated since, and hold none on a refused tick', () => {
    const [t0, t1, t2] = result.totals('semantic-free');
    expect(t0).toMatchObject({ sharedPages: 0, framesSaved: 0, reclaimedFreePages: 4, reclaimFaultsTick: 0, reclaimFaultsTotal: 0 });
    expect(t1).toMatchObject({ sharedPages: 0, reclaimedFreePages: 3, reclaimFaultsTick: 1, reclaimFaultsTotal: 1 });
    expect(t2).toMatchObject({ reclaimedFreePages: 0, reclaimFaultsTick: 0, reclaimFaultsTotal: 1 });
    expect(t2!.status).toMatch(/^refused: guest g1: page classes refused/);
    const row = sampleRow({ runId: 'r', scenario: { name: 'classes' } }, t1!);
    expect(row).toMatchObject({ reclaimed_free_pages: 3, reclaim_faults_tick: 1, reclaim_faults_total: 1, frames_saved: 0 });
    const values = result.metrics.find((m) => m.strategy === 'semantic-free')!.values;
    expect(values).toMatchObject({ reclaimed_free_pages: 0, reclaim_faults: 1, frames_saved: 0, frames_saved_and_reclaimed: 0 });
    for (const sample of result.totals('content')) expect(sample.reclaimedFreePages).toBeUndefined();
    expect(result.metrics.find((m) => m.strategy === 'content')!.values.reclaimed_free_pages).toBeUndefined();
  });

  it('are not taken when no strategy reads them', async () => {
    const plain = await run(['content', 'semantic']);
    expect(plain.source.calls).toBe(0);
  });
});
