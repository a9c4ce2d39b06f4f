/**
 * The figures of summary.csv: what each means, its unit and how it was measured. Every summary row carries
 * its unit and method so that a number read out of context still says what it is.
 */
export interface MetricDefinition {
  unit: string;
  method: string;
}

export const METRICS = {
  shared_pages: { unit: 'pages', method: 'ledger at the last tick: guest pages in groups of ≥2 byte-identical pages' },
  frames_saved: { unit: 'pages', method: 'shared pages − distinct frames backing them, at the last tick' },
  frames_saved_pct: { unit: '% of guest memory', method: 'frames_saved / all guest pages × 100' },
  zero_pages_shared: { unit: 'pages', method: 'shared pages whose bytes are all zero, at the last tick' },
  cow_faults: { unit: 'faults', method: 'content re-read each tick (xxh3 of every shared page vs its hash when shared): lower bound' },
  cow_faults_per_min: { unit: 'faults/min', method: 'cow_faults / time between the first and the last tick' },
  scan_cpu_ms: { unit: 'ms per scan', method: 'process.cpuUsage (user+sys) of the harness around strategy.scan, mean over the ticks after the first (steady state)' },
  first_scan_cpu_ms: { unit: 'ms', method: 'process.cpuUsage around the first scan: includes one-off work (semantic: locating each kernel, checking System.map against kallsyms)' },
  scan_cpu_ms_per_gib: { unit: 'ms per GiB scanned guest memory', method: 'scan_cpu_ms / GiB of guest RAM of all guests' },
  cow_cpu_ms: { unit: 'ms per tick', method: 'process.cpuUsage around CoW detection, mean over ticks after the first' },
  verify_cpu_ms: { unit: 'ms per tick', method: 'process.cpuUsage around the ledger’s byte verification before sharing (with backend xen: and the sharing hypercalls)' },
  scan_cpu_ratio_vs_semantic: { unit: 'ratio', method: 'steady-state scan_cpu_ms of this strategy / that of semantic, same repetition' },
  kernel_code_shareability_pct: { unit: '%', method: 'pages of [_text,_etext) byte-identical in all guests / pages in the range × 100, last tick' },
  kernel_rodata_shareability_pct: { unit: '%', method: 'pages of [__start_rodata,__end_rodata) identical in all guests / pages × 100, last tick' },
  refused_scans: { unit: 'scans', method: 'scans in which the strategy refused to share (reason in samples.csv status and run.json)' },
  workload_ops_per_s: { unit: 'ops/s', method: 'guest-reported XME-PROGRESS ops over guest time between ticks, mean over guests and ticks' },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRICS;
