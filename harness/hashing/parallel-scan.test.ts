/**
 * The content pass on several threads gives what one thread gives, byte for byte: the same groups in the same
 * order, the same figures, the same bytes hashed and compared (a split by guest would not: it would cut the
 * in-cache pairs of guest g with guest g − 1 and hash those pages instead). Stand-in guests in memory; the
 * threads are real worker threads reading the guests' RAM by address.
 */
import { describe, expect, it } from 'vitest';
import { MemoryGuest } from '../testing/memory-guest.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import { nativeScanEngine } from './native-scan-engine.ts';
import { ContentStrategy } from '../../strategies/content.ts';
import type { StrategyContext } from '../../strategies/types.ts';
import { PackedGroup } from '../sharing/packed-group.ts';
import { confirmThreaded, runBoundaries, windowRanges } from './parallel-scan.ts';
import { viewAddresses } from './native-scan-engine.ts';
import { confirmRuns, hashAllPages, KeyIndex } from '../../strategies/content-index.ts';
import { MIN_GFNS_PER_THREAD, scanThreadCount } from './scan-threads.ts';

const native = nativeScanEngine().engine;

/** A deterministic pseudo-random generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Guests as a fleet looks: mostly the same page at the same gfn in every guest (pairs), some pages repeated at
 * other gfns and within a guest, zero pages, unique pages, pages differing in their last byte only, and holes.
 */
function fleet(count: number, pages: number): { guests: MemoryGuest[]; residency: Uint8Array[] } {
  const next = random(20);
  const guests = Array.from({ length: count }, (_, g) => new MemoryGuest(`g${g}`, pages));
  const residency = guests.map(() => new Uint8Array(pages));
  for (let gfn = 0; gfn < pages; gfn++) {
    const kind = next();
    guests.forEach((guest, g) => {
      residency[g]![gfn] = next() < 0.9 ? 1 : 0;
      if (kind < 0.55)
        guest.fill(gfn, gfn); // the same page at the same gfn everywhere
      else if (kind < 0.65)
        guest.fill(gfn, Math.floor(next() * 40)); // one of few contents, anywhere
      else if (kind < 0.75)
        return; // zero
      else if (kind < 0.85) {
        guest.fill(gfn, gfn);
        guest.ram[(gfn + 1) * PAGE_SIZE - 1] = g; // differs from the other guests' in its last byte
      } else guest.fill(gfn, 100_000 + g * pages + gfn); // unique
    });
  }
  return { guests, residency };
}

function context(guests: MemoryGuest[], residency: Uint8Array[]): StrategyContext {
  return { guests, residency } as unknown as StrategyContext;
}

/** The whole result in a comparable form: groups in order (their packed pages), figures, costs. */
async function pass(guests: MemoryGuest[], residency: Uint8Array[], threads: number) {
  const result = await new ContentStrategy({ zeroPages: true, scanThreads: threads }).scan(context(guests, residency));
  // How the pass ran is not what it found: those three figures are checked apart.
  const { scan_threads, scan_worker_cpu_ms, pass_wall_ms, ...metrics } = result.metrics;
  expect(pass_wall_ms).toBeGreaterThan(0);
  expect(scan_threads).toBe(result.threads?.count);
  expect(scan_worker_cpu_ms).toBe(result.threads?.workerCpuMs);
  return {
    groups: result.groups.map((g) => ({ zero: g.zero, pages: g instanceof PackedGroup ? [...g.indices] : g.pages.map((p) => `${p.guest}:${p.gfn}`) })),
    metrics,
    cost: result.cost,
    threads: result.threads,
  };
}

describe.skipIf(!native)('content pass on several threads', () => {
  it('gives the one-thread result exactly, on 2, 3 and 5 threads', async () => {
    const { guests, residency } = fleet(3, 3000);
    const one = await pass(guests, residency, 1);
    expect(one.threads).toEqual({ count: 1, workerCpuMs: 0 });
    expect(one.groups.length).toBeGreaterThan(100);
    expect(one.cost.bytesCompared).toBeGreaterThan(0);
    for (const threads of [2, 3, 5]) {
      const many = await pass(guests, residency, threads);
      expect(many.threads!.count).toBe(threads);
      expect(many.threads!.workerCpuMs).toBeGreaterThan(0);
      expect({ ...many, threads: undefined }).toEqual({ ...one, threads: undefined });
    }
  });

  it('gives the one-thread result for guests of different sizes (ranges beyond the smaller guest)', async () => {
    const { guests: big, residency } = fleet(2, 2048);
    const small = new MemoryGuest('g2', 700);
    big[0]!.ram.copy(small.ram, 0, 0, small.ram.length);
    const guests = [...big, small];
    const maps = [...residency, residency[0]!.slice(0, 700)];
    const one = await pass(guests, maps, 1);
    const two = await pass(guests, maps, 2);
    expect({ ...two, threads: undefined }).toEqual({ ...one, threads: undefined });
  });
});

describe.skipIf(!native)('confirmation on several threads', () => {
  it('leaves the keys, class bounds and bytes compared of one thread (split forced below its threshold)', async () => {
    const { guests, residency } = fleet(3, 2000);
    const index = new KeyIndex();
    const { n } = hashAllPages(native!, index, guests, residency, new Float64Array(3));
    native!.sortKeys(index.keys, n, index.scratch);
    const sorted = index.keys.slice(0, n);
    const one = confirmRuns(native!, index, n, guests, residency);
    const oneKeys = index.keys.slice(0, n);
    const oneBounds = index.bounds.slice(0, 2 * one.classes);
    const bases = viewAddresses(guests.map((g) => g.ram));
    for (const threads of [2, 3]) {
      index.keys.set(sorted);
      const many = await confirmThreaded(
        native as Parameters<typeof confirmThreaded>[0],
        index.keys,
        n,
        bases,
        index.flags,
        index.bounds,
        index.scratch,
        threads,
        0,
      );
      expect(many.workerCpuMs).toBeGreaterThan(0);
      expect({ classes: many.classes, bytesCompared: many.bytesCompared }).toEqual(one);
      expect(index.keys.slice(0, n)).toEqual(oneKeys);
      expect(index.bounds.slice(0, 2 * many.classes)).toEqual(oneBounds);
    }
  });
});

describe('splitting the pass', () => {
  it.skipIf(!native)('cuts gfns at whole windows, about equal resident pages each side', () => {
    const pages = 64 * 10;
    const flags = { bytes: new Uint8Array(2 * pages), offsets: new Uint32Array([0, pages]) };
    flags.bytes.fill(1, 0, 64 * 8); // guest 0: the first 8 windows resident
    flags.bytes.fill(1, pages, pages + 64 * 8); // guest 1 too
    const counts = new Uint32Array([pages, pages]);
    const perWindow = native!.countWindows!(flags, counts);
    expect([...perWindow]).toEqual([128, 128, 128, 128, 128, 128, 128, 128, 0, 0]);
    expect(windowRanges(perWindow, counts, 2)).toEqual([0, 64 * 4, pages]);
    expect(windowRanges(perWindow, counts, 1)).toEqual([0, pages]);
  });

  it('cuts sorted keys only between runs of equal hashes', () => {
    const key = (hash: number, index: number) => (BigInt(hash) << 32n) | BigInt(index);
    const keys = new BigUint64Array([key(1, 0), key(1, 1), key(1, 2), key(1, 3), key(2, 4), key(3, 5)]);
    expect(runBoundaries(keys, 6, 2)).toEqual([0, 4, 6]);
    expect(runBoundaries(keys, 6, 3)).toEqual([0, 4, 4, 6]); // the second part is empty: its cut would split the run at 2
    expect(runBoundaries(keys, 6, 6)).toEqual([0, 4, 4, 4, 4, 5, 6]);
  });

  it('uses the host’s cores, one thread per 16 MiB of the longest guest at most; an option or XME_SCAN_THREADS decides otherwise', () => {
    expect(scanThreadCount(MIN_GFNS_PER_THREAD - 1)).toBe(1);
    expect(scanThreadCount(2 ** 16)).toBeGreaterThanOrEqual(1);
    expect(scanThreadCount(10, 3)).toBe(3);
    expect(() => scanThreadCount(10, 0)).toThrow(/option scanThreads is 0/);
    process.env.XME_SCAN_THREADS = 'two';
    try {
      expect(() => scanThreadCount(10)).toThrow(/XME_SCAN_THREADS is two/);
      process.env.XME_SCAN_THREADS = '3';
      expect(scanThreadCount(10)).toBe(3);
    } finally {
      delete process.env.XME_SCAN_THREADS;
    }
  });
});
