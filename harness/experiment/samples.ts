/** The columns of samples.csv: one row per tick × strategy × guest ("all" = the strategy's totals). */
export const SAMPLE_COLUMNS = [
  'run_id',
  'scenario',
  'repetition',
  'memory_mib',
  'tick',
  't_s',
  'strategy',
  'guest',
  'sharing_mode',
  'guest_pages',
  'shared_pages',
  'frames_saved',
  'host_frames_saved',
  'host_resident_pages',
  'zero_pages_shared',
  'cow_faults_tick',
  'cow_faults_total',
  'cow_copies_total',
  'cow_method',
  'cow_count',
  'scan_cpu_ms',
  'scan_wall_ms',
  'verify_cpu_ms',
  'cow_cpu_ms',
  'tick_cpu_ms',
  'cpu_method',
  'observer_cpu_ms',
  'memory_copy_cpu_ms',
  'pages_read',
  'bytes_hashed',
  'bytes_compared',
  'refused_pages',
  'kernel_code_pages',
  'kernel_code_identical_pages',
  'kernel_rodata_pages',
  'kernel_rodata_identical_pages',
  'strategy_metrics',
  'workload_ops_per_s',
  'status',
] as const;

export type SampleColumn = (typeof SAMPLE_COLUMNS)[number];

export const SUMMARY_COLUMNS = [
  'scenario',
  'memory_mib',
  'strategy',
  'metric',
  'unit',
  'n',
  'mean',
  'sd',
  'ci95_low',
  'ci95_high',
  'method',
] as const;

export type SummaryColumn = (typeof SUMMARY_COLUMNS)[number];

import { THREAD_CPU_METHOD } from '../util/thread-cpu.ts';

/** How every *_cpu_ms figure is measured (the same for all strategies; strategies run in rotated order). */
export const CPU_METHOD = `${THREAD_CPU_METHOD}; strategy order rotated every tick`;
