/**
 * Content-based sharing with KSM's economy — the CBPS a real system would run (the full rescan, content.ts,
 * stays as the upper-bound model). Like ksmd:
 *  - a window of `pagesPerTick` guest pages is visited per tick, the cursor moving on and wrapping around
 *    all guests (pages_to_scan); a full pass takes ⌈pages / pagesPerTick⌉ ticks;
 *  - the volatility filter: a page is a candidate only once its hash was the same on two visits in a row (KSM's
 *    unstable-tree checksum: a page that changes between visits is not worth merging);
 *  - only pages visited this tick are proposed, each with the candidates of equal hash found on earlier
 *    visits (one of them, the anchor, brings the frame it is on along in the ledger), after a byte compare.
 * Holes (pages the host does not back) are visited without being read: they are zero pages.
 * The stored hashes are a tick or more old: they only propose; every proposed page is compared now.
 */
import type { Guest } from '../harness/backends/types.ts';
import { PAGE_SIZE } from '../harness/vocabulary.ts';
import { XmeError } from '../harness/util/errors.ts';
import { pageIndex, gfnOfIndex, guestOfIndex, type ScanEngine } from '../harness/hashing/scan-engine.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import { pageBytes, type Residency } from '../harness/sharing/resident-pages.ts';
import { ZERO_PAGE } from '../harness/vocabulary.ts';
import type { MetricDeclarations, ScanCost } from '../harness/sharing/types.ts';
import { backedRuns, checkGuestsFit } from './content-index.ts';
import { scanEngineFor } from './scan-engine-choice.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

export interface IncrementalOptions {
  /** Guest pages visited per tick, over all guests (KSM's pages_to_scan per wake-up). */
  pagesPerTick: number;
  /** Propose a page only once its hash was unchanged on two visits in a row. */
  volatilityFilter: boolean;
  zeroPages: boolean;
}

/** Per page: never visited, visited (hash stored; new or changed at the last visit), stable (same hash twice). */
const UNSEEN = 0;
const VOLATILE = 1;
const STABLE = 2;
/** Pages excluded (e.g. the hybrid's kernel pages, shared by System.map): never visited nor proposed. */
const EXCLUDED = 3;

/** Pages per read: at most 8 MiB from a backend that copies. */
const CHUNK_PAGES = 2048;

export class IncrementalContentStrategy implements Strategy {
  readonly name: string = 'content-incremental';
  readonly declaredMetrics: MetricDeclarations = {
    window_pages: { unit: 'pages', method: 'guest pages visited this tick (holes included, not read), pagesPerTick or fewer' },
    stable_pages: {
      unit: 'pages',
      method: 'pages whose hash was unchanged on their last two visits: the candidates (all pages once visited, with the volatility filter off)',
    },
    volatile_pages: { unit: 'pages', method: 'pages visited this tick whose hash changed since their previous visit' },
    full_scans: { unit: 'scans', method: 'times the cursor has wrapped around all guests' },
    proposed_pages: { unit: 'pages', method: 'pages in the groups proposed this tick (visited this tick, or the anchor they join)' },
  };
  private hashes: BigUint64Array[] = [];
  private state: Uint8Array[] = [];
  private cursor = 0;
  private fullScans = 0;
  private keys = new BigUint64Array(0);
  private scratch = new BigUint64Array(0);
  private zeroHash: bigint | undefined;

  constructor(protected readonly options: IncrementalOptions) {}

  describe(): string {
    return `content-based, incremental like KSM (${this.options.pagesPerTick} pages per tick${this.options.volatilityFilter ? ', proposed after two visits with the same hash' : ''})`;
  }

  /** Exclude (or include again) pages of guest g: they are neither visited nor proposed. */
  protected setExcluded(g: number, first: number, count: number): void {
    this.state[g]!.fill(EXCLUDED, first, first + count);
  }

  protected prepare(guests: readonly Guest[]): void {
    checkGuestsFit(guests);
    if (this.hashes.length === guests.length && this.hashes.every((h, g) => h.length === guests[g]!.memoryPages)) return;
    this.hashes = guests.map((g) => new BigUint64Array(g.memoryPages));
    this.state = guests.map((g) => new Uint8Array(g.memoryPages));
    const total = guests.reduce((sum, g) => sum + g.memoryPages, 0);
    this.keys = new BigUint64Array(total);
    this.scratch = new BigUint64Array(total);
    this.cursor = 0;
  }

  /** Index bytes per guest page: stored hashes (8), state (1), keys and scratch (16). */
  indexBytesPerPage(): number {
    const pages = this.state.reduce((sum, s) => sum + s.length, 0);
    const bytes = [...this.hashes, ...this.state, this.keys, this.scratch].reduce((sum, a) => sum + a.byteLength, 0);
    return pages ? bytes / pages : 0;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const { guests } = context;
    this.prepare(guests);
    const engine = scanEngineFor(context.hasher);
    this.zeroHash ??= zeroHashOf(engine);
    const cost: ScanCost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    const window = this.nextWindow(guests);
    let volatile = 0;
    for (const span of window) volatile += this.visit(engine, guests[span.guest]!, span.guest, span.first, span.count, context.residency?.[span.guest], cost);

    const inWindow = windowTest(window);
    const { groups, proposed, stable } = this.propose(engine, guests, context.residency, inWindow, cost);
    return {
      groups,
      cost,
      metrics: {
        window_pages: window.reduce((sum, s) => sum + s.count, 0),
        stable_pages: stable,
        volatile_pages: volatile,
        full_scans: this.fullScans,
        proposed_pages: proposed,
      },
      notes: [],
    };
  }

  /** This tick's pages: [guest, first, count] spans from the cursor, wrapping around all guests. */
  private nextWindow(guests: readonly Guest[]): { guest: number; first: number; count: number }[] {
    const total = guests.reduce((sum, g) => sum + g.memoryPages, 0);
    let budget = Math.min(this.options.pagesPerTick, total);
    const spans: { guest: number; first: number; count: number }[] = [];
    while (budget > 0) {
      let position = this.cursor;
      let g = 0;
      while (position >= guests[g]!.memoryPages) position -= guests[g++]!.memoryPages;
      const count = Math.min(budget, guests[g]!.memoryPages - position);
      spans.push({ guest: g, first: position, count });
      budget -= count;
      this.cursor += count;
      if (this.cursor >= total) {
        this.cursor = 0;
        this.fullScans++;
      }
    }
    return spans;
  }

  /** Visit pages [first, first + count) of guest g: hash (holes: the zero page's hash, unread), update states. */
  private visit(engine: ScanEngine, guest: Guest, g: number, first: number, count: number, residency: Uint8Array | undefined, cost: ScanCost): number {
    const hashes = this.hashes[g]!;
    const state = this.state[g]!;
    const fresh = new BigUint64Array(Math.min(count, CHUNK_PAGES));
    let volatile = 0;
    const record = (gfn: number, hash: bigint) => {
      const s = state[gfn]!;
      if (s === EXCLUDED) return;
      const same = s !== UNSEEN && hashes[gfn] === hash;
      if (s !== UNSEEN && !same) volatile++;
      state[gfn] = same || !this.options.volatilityFilter ? STABLE : VOLATILE;
      hashes[gfn] = hash;
    };
    // Holes first (not read), then backed runs in chunks.
    if (residency) for (let gfn = first; gfn < first + count; gfn++) if (residency[gfn] === 0) record(gfn, this.zeroHash!);
    for (const run of backedRuns(first, first + count, residency)) {
      const end = run.first + run.count;
      for (let at = run.first; at < end; ) {
        // Excluded pages (the hybrid's kernel ranges) are never read: reads cover runs of the others only.
        if (state[at] === EXCLUDED) {
          at++;
          continue;
        }
        let n = 1;
        while (n < CHUNK_PAGES && at + n < end && state[at + n] !== EXCLUDED) n++;
        engine.hashPages(guest.pages(at, n), fresh);
        cost.pagesRead += n;
        cost.bytesHashed += n * PAGE_SIZE;
        for (let i = 0; i < n; i++) record(at + i, fresh[i]!);
        at += n;
      }
    }
    return volatile;
  }

  /**
   * Groups of this tick: runs of equal (truncated) hash among stable pages that include a page of this
   * window; each such run's window pages plus one earlier page (the anchor) are compared byte by byte.
   */
  private propose(
    engine: ScanEngine,
    guests: readonly Guest[],
    residency: Residency | undefined,
    inWindow: (g: number, gfn: number) => boolean,
    cost: ScanCost,
  ) {
    let n = 0;
    let stable = 0;
    guests.forEach((_, g) => {
      const before = n;
      n = engine.keysFromHashes(this.hashes[g]!, this.state[g]!, STABLE, pageIndex(g, 0), this.keys, n);
      stable += n - before;
    });
    engine.sortKeys(this.keys, n, this.scratch);
    const words = new Uint32Array(this.keys.buffer);
    const groups: PackedGroup[] = [];
    let proposed = 0;
    const bytesOf = (index: number) => pageBytes(guests[guestOfIndex(index)]!, gfnOfIndex(index), residency?.[guestOfIndex(index)]);
    for (let i = 0; i < n; ) {
      let end = i + 1;
      while (end < n && words[2 * end + 1] === words[2 * i + 1]) end++;
      if (end - i >= 2) {
        const candidates: number[] = [];
        let anchor: number | undefined;
        for (let j = i; j < end; j++) {
          const index = words[2 * j]!;
          if (inWindow(guestOfIndex(index), gfnOfIndex(index))) candidates.push(index);
          else anchor ??= index;
        }
        if (candidates.length > 0 && candidates.length + (anchor === undefined ? 0 : 1) >= 2) {
          if (anchor !== undefined) candidates.unshift(anchor);
          for (const members of byteClasses(candidates, bytesOf, cost)) {
            const zero = bytesOf(members[0]!).equals(ZERO_PAGE);
            if (zero && !this.options.zeroPages) continue;
            groups.push(new PackedGroup(Uint32Array.from(members), zero));
            proposed += members.length;
          }
        }
      }
      i = end;
    }
    return { groups, proposed, stable };
  }
}

/** Classes of ≥ 2 pages with identical bytes among `indices` (each compared with each class's first page). */
function byteClasses(indices: number[], bytesOf: (index: number) => Buffer, cost: ScanCost): number[][] {
  const classes: { reference: Buffer; members: number[] }[] = [];
  for (const index of indices) {
    const bytes = bytesOf(index);
    const home = classes.find((c) => {
      cost.bytesCompared += PAGE_SIZE;
      return c.reference.equals(bytes);
    });
    if (home) home.members.push(index);
    else classes.push({ reference: bytes, members: [index] });
  }
  return classes.filter((c) => c.members.length >= 2).map((c) => c.members);
}

/** (guest, gfn) → is it in this tick's window. */
function windowTest(spans: { guest: number; first: number; count: number }[]): (g: number, gfn: number) => boolean {
  return (g, gfn) => spans.some((s) => s.guest === g && gfn >= s.first && gfn < s.first + s.count);
}

function zeroHashOf(engine: ScanEngine): bigint {
  const out = new BigUint64Array(1);
  engine.hashPages(ZERO_PAGE, out);
  return out[0]!;
}

export function parseIncrementalOptions(strategy: string, options: Record<string, unknown>): IncrementalOptions {
  const pagesPerTick = options.pagesPerTick ?? 16384;
  const volatilityFilter = options.volatilityFilter ?? true;
  const zeroPages = options.zeroPages ?? true;
  if (typeof pagesPerTick !== 'number' || !Number.isInteger(pagesPerTick) || pagesPerTick < 1) {
    throw new XmeError(`strategy ${strategy}: option 'pagesPerTick' must be a whole number ≥ 1`);
  }
  if (typeof volatilityFilter !== 'boolean') throw new XmeError(`strategy ${strategy}: option 'volatilityFilter' must be true or false`);
  if (typeof zeroPages !== 'boolean') throw new XmeError(`strategy ${strategy}: option 'zeroPages' must be true or false`);
  return { pagesPerTick, volatilityFilter, zeroPages };
}

export const INCREMENTAL_OPTION_DOCS = {
  pagesPerTick: 'whole number, default 16384 (64 MiB): guest pages visited per tick over all guests, the cursor wrapping around (KSM: pages_to_scan)',
  volatilityFilter: 'boolean, default true: propose a page only after its hash was the same on two visits in a row (KSM: the unstable tree checksum)',
  zeroPages: 'boolean, default true: also share all-zero pages (always reported apart as zero_pages_shared)',
};

export const contentIncrementalFactory: StrategyFactory = {
  name: 'content-incremental',
  summary:
    'CBPS as a real system runs it (KSM-like): a window of pages per tick, wrapping; pages proposed once their hash is stable over two visits; byte-confirmed',
  options: INCREMENTAL_OPTION_DOCS,
  create(options) {
    return new IncrementalContentStrategy(parseIncrementalOptions('content-incremental', options));
  },
};
