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

/**
 * What a kernel image's guest runs once booted: the busybox initramfs's xme-load (guest-images/init/xme-load.c
 * says what each does and counts), reported on the serial console (harness/workloads/console-protocol.ts).
 */
export const BUSYBOX_WORKLOADS = ['idle', 'memchurn', 'pagecache', 'cpu', 'cowprobe', 'httpd', 'gzip'] as const;
export type BusyboxWorkloadName = (typeof BUSYBOX_WORKLOADS)[number];

/**
 * What a system image's guest runs: real applications of the Debian system with their own load generators,
 * started through the guest agent (harness/workloads/app-workloads.ts says what each runs and counts).
 */
export const APP_WORKLOADS = ['nginx', 'redis', 'pgbench', 'build', 'system-idle'] as const;
export type AppWorkloadName = (typeof APP_WORKLOADS)[number];

/** Every workload name: busybox workloads need a kernel image, application workloads a system image. */
export const WORKLOADS = [...BUSYBOX_WORKLOADS, ...APP_WORKLOADS] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export function isAppWorkload(name: WorkloadName): name is AppWorkloadName {
  return (APP_WORKLOADS as readonly string[]).includes(name);
}

/**
 * Every workload parameter. xme-load takes them as k=v words — all: interval_ms, seed; memchurn/pagecache/cpu/
 * httpd/gzip: mib, rate (units/s); httpd/gzip: fail_after (a deliberate failure after that many ops, for tests);
 * cowprobe (harness/workloads/cowprobe.ts): pages, writes, same, delay_ms, gap_ms, doorbell. Application
 * workloads take the few that app-workloads.ts lists for each (nginx: mib, interval_ms; pgbench: interval_ms).
 */
export const WORKLOAD_PARAMS = ['mib', 'rate', 'interval_ms', 'seed', 'fail_after', 'pages', 'writes', 'same', 'delay_ms', 'gap_ms', 'doorbell'] as const;
export type WorkloadParam = (typeof WORKLOAD_PARAMS)[number];

export interface WorkloadSpec {
  name: WorkloadName;
  /** Passed to xme-load as k=v words (see WORKLOAD_PARAMS). */
  params?: Partial<Record<WorkloadParam, number>>;
}

/**
 * One progress record of the guest's workload: cumulative ops at a guest time. Busybox workloads print them
 * (XME-PROGRESS lines); for application workloads the harness reads them from the tool's own output.
 */
export interface WorkloadProgress {
  /** Guest time (CLOCK_MONOTONIC in the guest): it stops while the guest is paused. */
  tMs: number;
  ops: number;
  /** Host time (Date.now()) when the harness read the line, where the console is watched (±100 ms). */
  hostMs?: number;
}

/** 4 KiB of zeros; shared, never written: a hole of guest RAM (never touched) reads as this. */
export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_SIZE);
