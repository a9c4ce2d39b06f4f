/**
 * The project's basic words, defined once: the page size and the zero page, a reference to a guest page, and the
 * workloads a guest can run with the progress they report. Every folder may import this file; it imports nothing,
 * so no two folders need each other for these.
 */

/** x86-64 base page: the unit of sharing, of guest frame numbers and of every page count in the CSVs. */
export const PAGE_SIZE = 4096;

export interface PageRef {
  /** Index of the guest in the run's guest list. */
  guest: number;
  /** Guest frame number (guest-physical address / PAGE_SIZE). */
  gfn: number;
}

/** What a guest runs once booted (see guest-images/init/xme-load.c for what each does and counts). */
export const WORKLOADS = ['idle', 'memchurn', 'pagecache', 'cpu', 'cowprobe', 'httpd', 'gzip'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

/**
 * Every parameter xme-load takes (as k=v words). All workloads: interval_ms, seed; memchurn/pagecache/cpu/httpd/gzip:
 * mib, rate (units/s); httpd/gzip: fail_after (a deliberate failure after that many ops, for tests);
 * cowprobe (harness/workloads/cowprobe.ts): pages, writes, same, delay_ms, gap_ms, doorbell.
 */
export const WORKLOAD_PARAMS = ['mib', 'rate', 'interval_ms', 'seed', 'fail_after', 'pages', 'writes', 'same', 'delay_ms', 'gap_ms', 'doorbell'] as const;
export type WorkloadParam = (typeof WORKLOAD_PARAMS)[number];

export interface WorkloadSpec {
  name: WorkloadName;
  /** Passed to xme-load as k=v words (see WORKLOAD_PARAMS). */
  params?: Partial<Record<WorkloadParam, number>>;
}

/** One progress line of the guest's workload: cumulative ops at a guest time. */
export interface WorkloadProgress {
  /** Guest time (CLOCK_MONOTONIC in the guest): it stops while the guest is paused. */
  tMs: number;
  ops: number;
  /** Host time (Date.now()) when the harness read the line, where the console is watched (±100 ms). */
  hostMs?: number;
}

/** 4 KiB of zeros; shared, never written: a hole of guest RAM (never touched) reads as this. */
export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_SIZE);
