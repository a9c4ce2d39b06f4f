/**
 * The ledger of Linux KSM: it shares nothing itself and verifies nothing (the kernel merges only pages whose
 * bytes it compared equal); it OBSERVES what KSM did to the guests' anonymous RAM, from outside, each tick:
 *
 * - Which guest pages share a frame: /proc/<qemu>/pagemap gives the host frame (PFN) of every guest page
 *   (host/page-frames.ts). A frame mapped by two or more pages of this run's guests is a KSM frame shared
 *   among them (anonymous private pages cannot otherwise share a frame; kpageflags' KSM flag confirms it).
 *   Pages merged into the kernel's zero page (use_zero_pages) are read from each QEMU's ksm_stat.
 *   shared pages = pages on such frames + KSM zero pages; frames saved = shared pages − distinct frames.
 *   Only pages of this run's guests count: a frame shared with a process outside the run saves nothing here.
 * - CoW write-faults: the kernel's own count, `cow_ksm` in /proc/vmstat, as a delta since the ledger began.
 *   It is host-wide (the kernel keeps no per-process count): it includes faults of any other process whose
 *   memory KSM merged, and it does not count writes to KSM zero pages. Per guest, the ledger counts the pages
 *   that left a shared KSM frame between two ticks (pagemap): a lower bound of that guest's faults (a page
 *   merged and broken within one tick is missed).
 * - CPU: ksmd's, from /proc/<ksmd>/schedstat (a kernel thread has no utime), over each tick's interval: the
 *   mechanism's; what the harness thread spends observing (pagemap, kpageflags, ksm_stat) is the instrument's.
 *   The CoW breaks are paid by the guests' vCPU threads, which no clock here sees: they are modelled as
 *   faults × the measured cost of one break (cowFaultModel 'linux-ksm-cow-break', harness/host/cow-break.ts).
 */
import type { Guest, HostProcessMemory } from '../backends/types.ts';
import { XmeError } from '../util/errors.ts';
import { FrameFlags, NOT_PRESENT, readPageFrames } from '../host/page-frames.ts';
import { readKsmCounters, readProcessKsmStat, type KsmCounters } from '../host/ksm.ts';
import { addFrameSaving, type ApplyResult, type CowEvent, type Ledger, type LedgerStats, type SavedWhere } from './ledger.ts';
import type { MetricDeclarations, ShareGroup } from './types.ts';
import { pageIndex } from '../hashing/scan-engine.ts';

export const KSMD_CPU_METHOD = "ksmd's run time: field 1 of /proc/<ksmd pid>/schedstat (a kernel thread), delta over the interval since the previous tick";

export const KSM_LEDGER_METRICS: MetricDeclarations = {
  ksm_pages_shared: { unit: 'frames', method: 'pages_shared in /sys/kernel/mm/ksm (host-wide: KSM frames in use)' },
  ksm_pages_sharing: { unit: 'pages', method: 'pages_sharing in /sys/kernel/mm/ksm (host-wide: extra mappings of KSM frames, the kernel\'s "frames saved")' },
  ksm_merging_pages: { unit: 'pages', method: "Σ ksm_merging_pages of the guests' QEMU processes (/proc/<pid>/ksm_stat)" },
  ksm_zero_pages: { unit: 'pages', method: "Σ ksm_zero_pages of the guests' QEMU processes (/proc/<pid>/ksm_stat): pages merged into the zero page" },
  ksm_full_scans: { unit: 'scans', method: 'full_scans in /sys/kernel/mm/ksm, since the ledger began' },
  ksm_pages_scanned: { unit: 'pages', method: 'pages_scanned in /sys/kernel/mm/ksm, since the ledger began (host-wide)' },
  ksmd_cpu_ms: { unit: 'ms', method: KSMD_CPU_METHOD.replace('over the interval since the previous tick', 'since the ledger began') },
  ksmd_pages_per_cpu_s: { unit: 'pages/s', method: 'ksm_pages_scanned / ksmd CPU seconds since the ledger began' },
  cow_pagemap_breaks: {
    unit: 'faults',
    method: "guest pages that left a shared KSM frame between two ticks (pagemap): a lower bound of the CoW faults of this run's guests",
  },
};

interface FrameCensus {
  /** Per guest: pages on a frame shared within the run, and that guest's KSM zero pages. */
  perGuestShared: number[];
  perGuestZero: number[];
  distinctFrames: number;
  frames: Float64Array[];
  /** PFNs shared within the run (so a page leaving one is a break). */
  sharedFrames: Set<number>;
  /** Σ ksm_merging_pages of the guests' QEMU processes at the census. */
  mergingPages: number;
  /** Frames saved by where the sharing lies (SavedWhere, ledger.ts). */
  savedWhere: SavedWhere;
}

export class KsmLedger implements Ledger {
  readonly mode = 'enforced';
  readonly cowMethod = 'kernel';
  readonly cowCount = 'host-wide';
  readonly cowFaultModel = 'linux-ksm-cow-break';
  readonly cowMethodDescription =
    "cow_ksm in /proc/vmstat, delta since the run began: the kernel counts every CoW break of a KSM page host-wide (other processes' included; writes to KSM zero pages not counted); " +
    'per guest: pages that left a shared KSM frame between two ticks (pagemap), a lower bound';
  readonly declaredMetrics = KSM_LEDGER_METRICS;
  private readonly memories: HostProcessMemory[];
  private readonly flags = new FrameFlags();
  private readonly start: KsmCounters;
  private latest: KsmCounters;
  private lastCpuNs: number;
  private census: FrameCensus | undefined;
  private readonly breaksPerGuest: number[];
  /** The frame maps detectCow() read this tick: apply()'s census uses them instead of reading pagemap again. */
  private framesThisTick: Float64Array[] | undefined;

  constructor(
    readonly strategy: string,
    guests: readonly Guest[],
  ) {
    this.memories = guests.map((guest) => {
      const memory = guest.hostProcess?.memory();
      if (!memory) {
        throw new XmeError(
          `guest ${guest.id}'s RAM is not anonymous memory of a host process, so KSM cannot merge it`,
          'the ksm strategy needs the qemu backend with guestRam anonymous-mergeable (the runner sets it)',
        );
      }
      return memory;
    });
    this.start = readKsmCounters();
    this.latest = this.start;
    this.lastCpuNs = this.start.ksmdCpuNs;
    this.breaksPerGuest = guests.map(() => 0);
  }

  /** Who maps what: one pagemap read per guest, kpageflags for frames seen twice. */
  private takeCensus(): FrameCensus {
    const frames = this.framesThisTick ?? this.memories.map((m) => readPageFrames(m.pid, m.address, m.bytes / 4096));
    this.framesThisTick = undefined;
    const count = new Map<number, number>();
    for (const map of frames) {
      for (let i = 0; i < map.length; i++) {
        const pfn = map[i]!;
        if (pfn !== NOT_PRESENT) count.set(pfn, (count.get(pfn) ?? 0) + 1);
      }
    }
    const sharedFrames = new Set<number>();
    for (const [pfn, n] of count) if (n > 1 && !this.flags.isZeroPage(pfn) && this.flags.isKsm(pfn)) sharedFrames.add(pfn);
    const guestsOfFrame = new Map<number, number[]>();
    const perGuestShared = frames.map((map, g) => {
      let shared = 0;
      for (let i = 0; i < map.length; i++) {
        const pfn = map[i]!;
        if (!sharedFrames.has(pfn)) continue;
        shared++;
        const guests = guestsOfFrame.get(pfn);
        if (guests) guests.push(g);
        else guestsOfFrame.set(pfn, [g]);
      }
      return shared;
    });
    const stats = this.memories.map((m) => readProcessKsmStat(m.pid));
    const perGuestZero = stats.map((stat) => stat.zeroPages);
    const mergingPages = stats.reduce((sum, stat) => sum + stat.mergingPages, 0);
    // A KSM zero page maps the kernel's own zero page (use_zero_pages): each one saves a frame.
    const savedWhere: SavedWhere = { zero: perGuestZero.reduce((a, b) => a + b, 0), withinGuest: 0, acrossGuests: 0 };
    for (const guests of guestsOfFrame.values()) addFrameSaving(savedWhere, false, guests);
    return { perGuestShared, perGuestZero, distinctFrames: sharedFrames.size, frames, sharedFrames, mergingPages, savedWhere };
  }

  /** KSM does the merging: the strategy proposes nothing, and this only looks at what the kernel did. */
  apply(groups: ShareGroup[]): ApplyResult {
    if (groups.length > 0) throw new Error('the KSM ledger takes no groups: the kernel chooses what to merge');
    const before = this.census ? this.sharedPagesOf(this.census) : 0;
    this.census = this.takeCensus();
    this.latest = readKsmCounters();
    return { groupsApplied: 0, pagesShared: Math.max(0, this.sharedPagesOf(this.census) - before), refused: [], bytesCompared: 0 };
  }

  /** Pages that were on a shared KSM frame at the previous census and are now on a frame of their own. */
  detectCow(): CowEvent[] {
    const previous = this.census;
    if (!previous) return [];
    const events: CowEvent[] = [];
    this.framesThisTick = this.memories.map((m) => readPageFrames(m.pid, m.address, m.bytes / 4096));
    this.memories.forEach((_, g) => {
      const now = this.framesThisTick![g]!;
      const was = previous.frames[g]!;
      for (let gfn = 0; gfn < now.length; gfn++) {
        const old = was[gfn]!;
        if (!previous.sharedFrames.has(old)) continue;
        const pfn = now[gfn]!;
        if (pfn === old || pfn === NOT_PRESENT) continue;
        if (!this.flags.isKsm(pfn)) {
          events.push({ guest: g, gfn });
          this.breaksPerGuest[g]!++;
        }
      }
    });
    return events;
  }

  /**
   * The shared KSM frames of the last census, each as the keys (guest · 2^24 + gfn) of the run's pages on it. KSM
   * zero pages are not among them: ksm_stat counts them and no frame of guest memory backs them.
   */
  sharedFrames(): Iterable<readonly number[]> {
    const census = this.census;
    if (!census) return [];
    const members = new Map<number, number[]>();
    census.frames.forEach((map, g) => {
      for (let gfn = 0; gfn < map.length; gfn++) {
        const pfn = map[gfn]!;
        if (!census.sharedFrames.has(pfn)) continue;
        const key = pageIndex(g, gfn);
        const keys = members.get(pfn);
        if (keys) keys.push(key);
        else members.set(pfn, [key]);
      }
    });
    return members.values();
  }

  private sharedPagesOf(census: FrameCensus): number {
    return census.perGuestShared.reduce((a, b) => a + b, 0) + census.perGuestZero.reduce((a, b) => a + b, 0);
  }

  stats(): LedgerStats {
    const census = this.census;
    const sharedPages = census ? this.sharedPagesOf(census) : 0;
    const framesUsed = census?.distinctFrames ?? 0;
    const cowFaults = Math.max(0, this.latest.cowKsm - this.start.cowKsm);
    return {
      sharedPages,
      framesUsed,
      framesSaved: sharedPages - framesUsed,
      zeroPagesShared: census ? census.perGuestZero.reduce((a, b) => a + b, 0) : 0,
      // Every KSM frame is a real host frame and every merged page freed one: guest-physical = host figure.
      hostFramesSaved: sharedPages - framesUsed,
      savedWhere: census?.savedWhere ?? { zero: 0, withinGuest: 0, acrossGuests: 0 },
      cowFaults,
      // A write to a KSM page always copies it (the kernel never reuses a KSM page for a writer).
      cowCopies: cowFaults,
      perGuest: this.memories.map((_, g) => ({
        sharedPages: census ? census.perGuestShared[g]! + census.perGuestZero[g]! : 0,
        cowFaults: this.breaksPerGuest[g]!,
      })),
    };
  }

  /** ksmd's CPU since the previous call: the mechanism's cost, which the harness thread never sees. */
  mechanismCpu(): { cpuMs: number; method: string } {
    const now = readKsmCounters().ksmdCpuNs;
    const cpuMs = (now - this.lastCpuNs) / 1e6;
    this.lastCpuNs = now;
    return { cpuMs, method: KSMD_CPU_METHOD };
  }

  extraMetrics(): Record<string, number> {
    const latest = this.latest;
    const cpuMs = (latest.ksmdCpuNs - this.start.ksmdCpuNs) / 1e6;
    const scanned = latest.pagesScanned - this.start.pagesScanned;
    const metrics: Record<string, number> = {
      ksm_pages_shared: latest.pagesShared,
      ksm_pages_sharing: latest.pagesSharing,
      ksm_merging_pages: this.census?.mergingPages ?? 0,
      ksm_zero_pages: this.census ? this.census.perGuestZero.reduce((a, b) => a + b, 0) : 0,
      ksm_full_scans: latest.fullScans - this.start.fullScans,
      ksm_pages_scanned: scanned,
      ksmd_cpu_ms: cpuMs,
      cow_pagemap_breaks: this.breaksPerGuest.reduce((a, b) => a + b, 0),
    };
    if (cpuMs > 0) metrics.ksmd_pages_per_cpu_s = scanned / (cpuMs / 1000);
    return metrics;
  }

  close(): void {
    this.flags.close();
  }
}
