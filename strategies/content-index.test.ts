import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryGuest } from '../harness/testing/memory-guest.ts';
import type { MemoryView, TickCopy } from '../harness/backends/types.ts';
import { loadWasmHasher } from '../harness/hashing/page-hasher.ts';
import { nativeScanEngine } from '../harness/hashing/native-scan-engine.ts';
import { PAGE_PAIR, PAGE_ZERO, pageIndex, PortableScanEngine, type ScanEngine } from '../harness/hashing/scan-engine.ts';
import { classGroups, confirmByCopies, confirmRuns, flaggedPages, hashAllPages, KeyIndex } from './content-index.ts';

/** A page of 32-bit words seeded by `seed`: distinct seeds give distinct pages. */
function fill(guest: MemoryGuest, gfn: number, seed: number): void {
  const page = guest.pages(gfn, 1);
  for (let i = 0; i < page.length; i += 4) page.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
}

/** Two guests: shared pages at the same gfn (pairs), one at another gfn, zeros, a hole. */
function guests(): { guests: MemoryGuest[]; residency: Uint8Array[] } {
  const a = new MemoryGuest('g0', 300);
  const b = new MemoryGuest('g1', 300);
  for (let gfn = 0; gfn < 300; gfn++) {
    fill(a, gfn, 1000 + gfn);
    fill(b, gfn, 2000 + gfn);
  }
  for (const gfn of [1, 2, 70, 299]) fill(b, gfn, 1000 + gfn); // same gfn in both: pairs (across windows)
  fill(b, 5, 1000 + 9); // b:5 equals a:9 (other gfn)
  fill(a, 10, 1000 + 9); // a:10 equals a:9 (same guest)
  a.pages(3, 1).fill(0);
  b.pages(3, 1).fill(0);
  b.pages(4, 1).fill(0);
  const residency = [new Uint8Array(300).fill(1), new Uint8Array(300).fill(1)];
  residency[1]![200] = 0; // a hole: never read, a zero page
  b.pages(200, 1).fill(0xee); // bytes a read would see (it must not be read)
  return { guests: [a, b], residency };
}

/** A guest whose pages() copies (as anonymous RAM read from outside QEMU): no memory view. */
class CopyingGuest extends MemoryGuest {
  override readonly memoryView: MemoryView = { all: () => undefined };
  override pages(firstGfn: number, count: number): Buffer {
    return Buffer.from(super.pages(firstGfn, count));
  }
  readonly tickCopy: TickCopy = {
    copyForTick: () => undefined,
    dropTickCopy: () => undefined,
    readPagesInto: (firstGfn, count, target, offset) => {
      super.pages(firstGfn, count).copy(target, offset);
    },
  };
}

const sortedGroups = (groups: { pages: { guest: number; gfn: number }[] }[]) =>
  groups
    .map((g) =>
      g.pages
        .map((p) => `${p.guest}:${p.gfn}`)
        .sort()
        .join(' '),
    )
    .sort();

describe('content index', () => {
  const engines: [string, () => ScanEngine][] = [];
  let portable: ScanEngine;
  beforeAll(async () => {
    portable = new PortableScanEngine(await loadWasmHasher());
  });
  engines.push(['portable', () => portable]);
  // Where the native engine does not build (no gcc or libxxhash), its tests are skipped, visibly.
  const native = nativeScanEngine().engine;
  if (native) engines.push(['native', () => native]);

  it.each(engines)('%s: groups identical pages, confirmed byte by byte; zeros and holes apart', (_name, engine) => {
    const { guests: gs, residency } = guests();
    const index = new KeyIndex();
    const stats = new Float64Array(3);
    const { n, pagesRead } = hashAllPages(engine(), index, gs, residency, stats);
    expect(pagesRead).toBe(599);
    engine().sortKeys(index.keys, n, index.scratch);
    const confirmed = confirmRuns(engine(), index, n, gs, residency);
    expect(sortedGroups(classGroups(index, confirmed))).toEqual(['0:1 1:1', '0:2 1:2', '0:299 1:299', '0:70 1:70', '0:10 0:9 1:5'].sort());
    const zeros = [...flaggedPages(index, gs, PAGE_ZERO, engine())];
    expect(zeros).toEqual([pageIndex(0, 3), pageIndex(1, 3), pageIndex(1, 4), pageIndex(1, 200)]);
  });

  it.each(engines)('%s: guests that copy (no memory view) give the same groups', (_name, engine) => {
    const { guests: viewed, residency } = guests();
    const copying = viewed.map((g) => {
      const c = new CopyingGuest(g.id, g.memoryPages);
      g.ram.copy(c.ram);
      return c;
    });
    const index = new KeyIndex();
    const { n } = hashAllPages(engine(), index, copying, residency, new Float64Array(3));
    engine().sortKeys(index.keys, n, index.scratch);
    const confirmed = confirmRuns(engine(), index, n, copying, residency);
    expect(sortedGroups(classGroups(index, confirmed))).toEqual(['0:1 1:1', '0:2 1:2', '0:299 1:299', '0:70 1:70', '0:10 0:9 1:5'].sort());
  });

  it.skipIf(!native)('native: a page equal to the previous guest’s page at its gfn is a pair, compared and not hashed; so is a zero page', () => {
    const { guests: gs, residency } = guests();
    const index = new KeyIndex();
    const stats = new Float64Array(3);
    hashAllPages(native!, index, gs, residency, stats);
    const pairs = [...index.guestFlags(1, 300).entries()].filter(([, f]) => f === PAGE_PAIR).map(([gfn]) => gfn);
    expect(pairs).toEqual([1, 2, 70, 299]);
    expect(stats[1]).toBe((599 - 4 - 3) * 4096); // hashed: every page read but the pairs and the 3 zero pages
  });

  /** Four keys with one forged high word: a:20, a:21 (different bytes), b:20 = a:20 copy, b:21. */
  function forgedRun() {
    const { guests: gs } = guests();
    const index = new KeyIndex();
    index.reserve(gs);
    index.flags.bytes.fill(0);
    fill(gs[1]!, 20, 1000 + 20);
    const words = new Uint32Array(index.keys.buffer);
    [pageIndex(0, 20), pageIndex(0, 21), pageIndex(1, 20), pageIndex(1, 21)].forEach((i, k) => {
      words[2 * k] = i;
      words[2 * k + 1] = 0xabcd;
    });
    return { gs, index };
  }

  it('splits pages whose (truncated) hashes are equal but whose bytes differ', () => {
    const { gs, index } = forgedRun();
    const copies = confirmByCopies(index, 4, (i) => gs[Math.floor(i / 2 ** 24)]!.pages(i % 2 ** 24, 1));
    expect(sortedGroups(classGroups(index, copies))).toEqual(['0:20 1:20']);
  });

  it.skipIf(!native)('native: splits pages whose (truncated) hashes are equal but whose bytes differ', () => {
    const { gs, index } = forgedRun();
    expect(sortedGroups(classGroups(index, confirmRuns(native!, index, 4, gs, undefined)))).toEqual(['0:20 1:20']);
  });

  const unsorted = () => new BigUint64Array([(5n << 32n) | 9n, (3n << 32n) | 7n, (5n << 32n) | 2n, (0xffffffffn << 32n) | 1n, (3n << 32n) | 1n]);

  it('sorts keys by hash (portable)', () => {
    const a = unsorted();
    portable.sortKeys(a, 5, new BigUint64Array(5));
    expect([...a]).toEqual([(3n << 32n) | 1n, (3n << 32n) | 7n, (5n << 32n) | 2n, (5n << 32n) | 9n, (0xffffffffn << 32n) | 1n]);
  });

  it.skipIf(!native)('sorts keys by hash (native radix: equal hashes keep their order)', () => {
    const b = unsorted();
    native!.sortKeys(b, 5, new BigUint64Array(5));
    expect([...b]).toEqual([(3n << 32n) | 7n, (3n << 32n) | 1n, (5n << 32n) | 9n, (5n << 32n) | 2n, (0xffffffffn << 32n) | 1n]);
  });
});
