/**
 * Where sharing comes from, in the tick loop on stand-in guests with crafted classes: each strategy's frames
 * saved by class add up to its frames_saved; the part of content's savings each semantic strategy also saves is
 * the known answer of the crafted memory; the bookkeeping is billed to the instrument of every row (and, with
 * classifyForAttribution and no strategy reading classes, the classification too), never to a mechanism; the
 * columns reach samples.csv.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { PageClasses } from '../introspection/page-classes.ts';
import { SAVED_CLASSES } from '../introspection/saved-by-class.ts';
import { sampleRow } from '../results/samples.ts';
import type { StrategySample, TickSample } from '../results/tick-sample.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { CraftedClassSource, craftedClasses, craftedFile, type CraftedFrame } from '../testing/crafted-page-classes.ts';
import { FakeBackend, fakeImage, type FakeGuest } from '../testing/fake-backend.ts';
import { fakeRepetitionInput } from '../testing/fake-repetition.ts';
import { runRepetition } from './tick-loop.ts';
import type { PageClassesOrRefusal } from './tick-page-classes.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

const PAGES = 16;
const SPIN_MS = 3;

/**
 * Frames 0–7 hold the same bytes in both guests but frame 3; frames 8–15 differ per guest, except that g0's
 * frame 13 holds the bytes of g1's frame 3 (113). So content saves 8 frames: g1's 0, 1, 2, 3 (page cache: 3
 * is a page of the file whose bytes differ between the guests, but equal g0's frame 13) and g1's 4–7 (anon).
 */
function boot(guest: FakeGuest, index: number): void {
  for (let gfn = 0; gfn < PAGES; gfn++) guest.fill(gfn, gfn === 3 || gfn >= 8 ? 100 + index * 10 + gfn : gfn + 1);
}

/** Frames 0–3 are pages 0–3 of one file, 10 and 11 free, the rest anonymous. */
function classesAt(guests: readonly { id: string }[]): PageClassesOrRefusal {
  return {
    guests: guests.map((guest) => {
      const spec: Record<number, CraftedFrame> = { 10: { kind: 'free' }, 11: { kind: 'free' } };
      for (let index = 0; index < 4; index++) spec[index] = { kind: 'pagecache', file: 0, index };
      return craftedClasses(guest.id, PAGES, spec, [craftedFile()]);
    }),
  };
}

/** The crafted classes with the kernel's counters set: they agree but for g0's anonymous pages (off by `anonOff`). */
function withCounters(guests: readonly { id: string }[], anonOff: number): PageClassesOrRefusal {
  const made = classesAt(guests);
  if (!('guests' in made)) return made;
  return {
    guests: made.guests.map((c, g) => {
      const counts = c.counts();
      const node = {
        NR_FILE_PAGES: counts.pagecache + counts.shmem,
        NR_SHMEM: counts.shmem,
        NR_FILE_DIRTY: 0,
        NR_WRITEBACK: 0,
        NR_ANON_MAPPED: counts.anon + (g === 0 ? anonOff : 0),
        NR_SLAB_RECLAIMABLE_B: 0,
        NR_SLAB_UNRECLAIMABLE_B: 0,
        NR_PAGETABLE: 0,
      };
      const counters = { zone: { NR_FREE_PAGES: counts.free }, node, perCpuFreePages: 0, freeAreaPages: counts.free };
      return new PageClasses(c.guestId, c.frames, c.kind, c.bits, c.order, c.head, c.ref, c.fileIndex, c.files, c.caches, c.modules, counters, c.topology);
    }),
  };
}

async function run(
  strategies: unknown[],
  options: { classifyForAttribution?: boolean; classes?: (guests: readonly { id: string }[]) => PageClassesOrRefusal } = {},
) {
  const scenario = parseScenario({ name: 'classes', guests: 2, memoryMiB: 64, durationS: 0.01, tickS: 0.01, workload: { name: 'idle' }, strategies });
  const backend = new FakeBackend({ memoryPages: PAGES, boot });
  const guests = await backend.provision(fakeImage(), 2, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
  const source = new CraftedClassSource(options.classes ?? classesAt, SPIN_MS);
  const samples: TickSample[] = [];
  const warnings: string[] = [];
  await runRepetition(
    fakeRepetitionInput({
      scenario,
      backend,
      guests,
      hasher,
      emit: (sample) => samples.push(sample),
      warn: (text) => warnings.push(text),
      pageClassSource: source,
      ...(options.classifyForAttribution ? { classifyForAttribution: true } : {}),
    }),
  );
  const totals = (label: string) => samples.filter((s): s is StrategySample => s.scope === 'all' && s.strategy === label);
  return { source, samples, totals, warnings };
}

const sumOf = (sample: StrategySample) => SAVED_CLASSES.reduce((sum, name) => sum + sample.savedByClass![name], 0);

describe('where sharing comes from, in the tick loop', () => {
  let result: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    result = await run(['content', 'semantic-pagecache', 'semantic-free']);
  });

  it('gives content’s frames saved by class, adding up to its frames_saved', () => {
    for (const sample of result.totals('content')) {
      expect(sample.framesSaved).toBe(8);
      expect(sample.savedByClass).toMatchObject({ pagecache: 4, anon: 4, free: 0 });
      expect(sumOf(sample) + sample.savedUnlocated!).toBe(sample.framesSaved);
      expect(sample.savedUnlocated).toBe(0);
      expect(sample.contentSavedFound).toBeUndefined();
    }
  });

  it('says how much of content’s savings each semantic strategy also saves, without scanning', () => {
    for (const sample of result.totals('semantic-pagecache')) {
      // Pages 0–2 of the file (page 3's bytes differ across the guests: the ledger refuses it).
      expect(sample.savedByClass).toMatchObject({ pagecache: 3 });
      expect(sample.contentSavedFound).toBe(3);
    }
    for (const sample of result.totals('semantic-free')) {
      // It reclaims frames 10 and 11, whose bytes content cannot share: none of content's savings.
      expect(sample.reclaimedFreePages).toBe(4);
      expect(sample.contentSavedFound).toBe(0);
      expect(sumOf(sample)).toBe(0);
    }
  });

  it('bills the bookkeeping to every row’s instrument, never to a mechanism or to the classification', () => {
    for (const label of ['content', 'semantic-pagecache', 'semantic-free']) {
      for (const { cost } of result.totals(label)) {
        expect(cost.attributionCpuMs, label).toBeGreaterThan(0);
        expect(cost.attributionCpuMs, label).toBeLessThan(SPIN_MS);
        expect(cost.instrumentCpuMs).toBeGreaterThanOrEqual(cost.attributionCpuMs!);
      }
    }
    for (const { cost } of result.totals('content')) expect(cost.classifyCpuMs).toBeUndefined();
  });

  it('writes the columns to samples.csv', () => {
    const row = sampleRow({ runId: 'r', scenario: { name: 'classes' } }, result.totals('semantic-pagecache')[0]!);
    expect(row).toMatchObject({ saved_pagecache_frames: 3, saved_anon_frames: 0, saved_unlocated_frames: 0, content_saved_found_frames: 3 });
    expect(row.attribution_cpu_ms).toBeGreaterThan(0);
  });

  it('classifies for attribution only when asked and no strategy reads classes, billed to the instrument', async () => {
    const plain = await run(['content']);
    expect(plain.source.calls).toBe(0);
    expect(plain.totals('content')[0]!.savedByClass).toBeUndefined();
    const attributed = await run(['content'], { classifyForAttribution: true });
    expect(attributed.source.calls).toBe(2);
    for (const { cost, savedByClass } of attributed.totals('content')) {
      expect(savedByClass).toMatchObject({ pagecache: 4, anon: 4 });
      // The spun classification is in the instrument, not in the scan or the mechanism.
      expect(cost.attributionCpuMs).toBeGreaterThanOrEqual(SPIN_MS);
      expect(cost.instrumentCpuMs).toBeGreaterThanOrEqual(cost.attributionCpuMs!);
      expect(cost.classifyCpuMs).toBeUndefined();
      expect(cost.mechanismCpuMs).toBeLessThan(cost.instrumentCpuMs);
    }
  });

  it('checks every tick’s classes against the kernel’s counters per guest, and warns once per guest and counter beyond the tolerance', async () => {
    // 4 anonymous frames more by the kernel's count than classified: at the tolerance (max(4, 0.5 %)), no warning.
    const within = await run(['semantic-free'], { classes: (guests) => withCounters(guests, 4) });
    expect(within.warnings).toEqual([]);
    const rows = within.samples.filter((s) => s.scope === 'guest' && s.strategy === 'semantic-free');
    expect(rows).toHaveLength(2 * 2);
    for (const sample of rows) expect(sample.scope === 'guest' && sample.counters?.anon.agrees).toBe(true);
    // 5 more: g0's anon pair disagrees at both ticks; one warning, g1 never.
    const beyond = await run(['semantic-free'], { classes: (guests) => withCounters(guests, 5) });
    expect(beyond.warnings).toHaveLength(1);
    expect(beyond.warnings[0]).toMatch(
      /^page classes of g0 disagree with the kernel's own counters at tick 0: anon: classified 10, kernel 15 \(NR_ANON_MAPPED\)/,
    );
    const g0 = beyond.samples.find((s) => s.scope === 'guest' && s.guest === 'g0' && s.tick === 1)!;
    expect(sampleRow({ runId: 'r', scenario: { name: 'classes' } }, g0)).toMatchObject({
      classes_anon_pages: 10,
      kernel_anon_pages: 15,
      classes_free_pages: 2,
      kernel_free_pages: 2,
      classes_file_pages: 4,
      kernel_file_pages: 4,
      classes_counters_agree: 0,
    });
  });
});
