/**
 * RECORDED RESULTS, for the writers' unit tests (as hyperfine tests its exporters): TickSamples the tick loop
 * produced on fake guests (harness/testing/fake-backend.ts: 2 guests × 16 pages, guest g1 writing one shared
 * page after tick 0, guest g0 with 4 holes; strategies content and semantic, semantic refusing for want of a
 * kernel), tick 1, and the samples.csv lines written for them. Those lines agree, in every column that does
 * not measure time, with what the runner wrote before the reporting seam existed, on the same fake run.
 *
 * The tick split (mechanism_cpu_ms, cow_model_cpu_ms, instrument_cpu_ms; tick-sample.ts TickCost) was added
 * to these samples when it was introduced, from their recorded parts as the tick loop computes it: mechanism =
 * scan + verification + CoW model, instrument = CoW detection, the CoW model = faults × 3867.529 ns (one KSM
 * CoW break as measured on the development host, harness/host/cow-break.ts); residency_cpu_ms stays unknown
 * (not recorded then). The samples.csv header below is a literal: it changes with SAMPLE_SCHEMA, by hand.
 */
import { THREAD_CPU_METHOD } from '../util/thread-cpu.ts';
import type { TickSample } from '../results/tick-sample.ts';
import type { RunHeader } from '../results/run.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { fakeImage, fakeKernel } from './fake-backend.ts';

export const RECORDED_RUN = { runId: '20261127-134455-golden', scenario: { name: 'golden' } };

const origin = {
  guests: 2,
  memoryMiB: 64,
  repetition: 1,
  tick: 1,
  tS: 0.021,
  sharingMode: 'accounted',
  cowMethod: 'content-reread',
  cowCount: 'lower bound',
} as const;
const REFUSED =
  'refused: System.map does not match the kernel running in guest g0: no 2 MiB-aligned placement has "Linux version 6.1.0-0-fake-amd64" at linux_banner\'s offset from _text';

/** The per-fault cost the recorded split was computed with (ns CPU), and the content sample's one fault at it, in ms. */
export const RECORDED_COW_FAULT_NS = 3867.529;
const RECORDED_COW_MODEL_MS = (1 * RECORDED_COW_FAULT_NS) / 1e6;

export const RECORDED_SAMPLES: TickSample[] = [
  {
    ...origin,
    strategy: 'content',
    status: 'ok',
    scope: 'all',
    guestPages: 32,
    sharedPages: 29,
    framesSaved: 20,
    hostFramesSaved: undefined,
    hostResidentPages: undefined,
    zeroPagesShared: 14,
    // Recorded before the split columns existed: left unknown, as in a samples.csv of that time.
    framesSavedZero: undefined,
    framesSavedWithinGuest: undefined,
    framesSavedAcrossGuests: undefined,
    cowFaultsTick: 1,
    cowFaultsTotal: 1,
    cowCopiesTotal: 1,
    cost: {
      cpuMethod: THREAD_CPU_METHOD,
      scanCpuMs: 0.578099,
      scanWallMs: 0.5896809999999277,
      verifyCpuMs: 0.554984,
      cowCpuMs: 0.114688,
      tickCpuMs: 1.2477710000000002,
      mechanismCpuMs: 0.578099 + 0.554984 + RECORDED_COW_MODEL_MS,
      cowModelCpuMs: RECORDED_COW_MODEL_MS,
      instrumentCpuMs: 0.114688,
      pagesRead: 28,
      bytesHashed: 114688,
      bytesCompared: 81920,
    },
    refusedPages: 0,
    metrics: { zero_pages: 14, distinct_hashes: 12 },
  },
  {
    ...origin,
    strategy: 'content',
    status: 'ok',
    scope: 'guest',
    guest: 'g0',
    guestPages: 16,
    sharedPages: 15,
    hostResidentPages: 12,
    cowFaultsTick: 0,
    cowFaultsTotal: 0,
    workloadOpsPerS: undefined,
  },
  {
    ...origin,
    strategy: 'content',
    status: 'ok',
    scope: 'guest',
    guest: 'g1',
    guestPages: 16,
    sharedPages: 14,
    hostResidentPages: undefined,
    cowFaultsTick: 1,
    cowFaultsTotal: 1,
    workloadOpsPerS: undefined,
  },
  {
    ...origin,
    strategy: 'semantic',
    status: REFUSED,
    scope: 'all',
    guestPages: 32,
    sharedPages: 0,
    framesSaved: 0,
    hostFramesSaved: undefined,
    hostResidentPages: undefined,
    zeroPagesShared: 0,
    framesSavedZero: undefined,
    framesSavedWithinGuest: undefined,
    framesSavedAcrossGuests: undefined,
    cowFaultsTick: 0,
    cowFaultsTotal: 0,
    cowCopiesTotal: 0,
    cost: {
      cpuMethod: THREAD_CPU_METHOD,
      scanCpuMs: 0.129115,
      scanWallMs: 0.13742199999978766,
      verifyCpuMs: 0.006372,
      cowCpuMs: 0.069964,
      tickCpuMs: 0.205451,
      mechanismCpuMs: 0.129115 + 0.006372,
      cowModelCpuMs: 0,
      instrumentCpuMs: 0.069964,
      pagesRead: 0,
      bytesHashed: 0,
      bytesCompared: 0,
    },
    refusedPages: 0,
    metrics: {},
  },
];

/** samples.csv as written for RECORDED_SAMPLES (header, then one line per sample). */
export const RECORDED_SAMPLES_CSV = `${[
  'run_id,scenario,repetition,guests,memory_mib,tick,t_s,strategy,guest,sharing_mode,guest_pages,shared_pages,frames_saved,host_frames_saved,frames_saved_zero,frames_saved_within_guest,frames_saved_across_guests,host_resident_pages,zero_pages_shared,cow_faults_tick,cow_faults_total,cow_copies_total,reclaimed_free_pages,host_reclaimed_free_pages,reclaim_faults_tick,reclaim_faults_total,saved_free_frames,saved_pagecache_frames,saved_shmem_frames,saved_anon_frames,saved_slab_frames,saved_pagetable_frames,saved_kernel_text_frames,saved_kernel_rodata_frames,saved_kernel_data_frames,saved_module_text_frames,saved_other_frames,saved_unlocated_frames,content_saved_found_frames,cow_method,cow_count,scan_cpu_ms,scan_wall_ms,verify_cpu_ms,cow_cpu_ms,tick_cpu_ms,cpu_method,observer_cpu_ms,memory_copy_cpu_ms,residency_cpu_ms,mechanism_cpu_ms,cow_model_cpu_ms,instrument_cpu_ms,classify_cpu_ms,classify_check_cpu_ms,attribution_cpu_ms,pages_read,bytes_hashed,bytes_compared,refused_pages,kernel_code_pages,kernel_code_identical_pages,kernel_rodata_pages,kernel_rodata_identical_pages,strategy_metrics,workload_ops_per_s,classes_free_pages,kernel_free_pages,classes_file_pages,kernel_file_pages,classes_anon_pages,kernel_anon_pages,classes_slab_pages,kernel_slab_pages,classes_pagetable_pages,kernel_pagetable_pages,classes_counters_agree,status',
  '20261127-134455-golden,golden,1,2,64,1,0.021,content,all,accounted,32,29,20,,,,,,14,1,1,1,,,,,,,,,,,,,,,,,,content-reread,lower bound,0.578099,0.589681,0.554984,0.114688,1.24777,clock_gettime(CLOCK_THREAD_CPUTIME_ID) of the thread that ran the work (user+sys; other threads of the harness not counted); strategy order rotated every tick,,,,1.13695,0.00386753,0.114688,,,,28,114688,81920,0,,,,,zero_pages=14;distinct_hashes=12,,,,,,,,,,,,,ok',
  '20261127-134455-golden,golden,1,2,64,1,0.021,content,g0,accounted,16,15,,,,,,12,,0,0,,,,,,,,,,,,,,,,,,,content-reread,lower bound,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,ok',
  '20261127-134455-golden,golden,1,2,64,1,0.021,content,g1,accounted,16,14,,,,,,,,1,1,,,,,,,,,,,,,,,,,,,content-reread,lower bound,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,ok',
  '20261127-134455-golden,golden,1,2,64,1,0.021,semantic,all,accounted,32,0,0,,,,,,0,0,0,0,,,,,,,,,,,,,,,,,,content-reread,lower bound,0.129115,0.137422,0.006372,0.069964,0.205451,clock_gettime(CLOCK_THREAD_CPUTIME_ID) of the thread that ran the work (user+sys; other threads of the harness not counted); strategy order rotated every tick,,,,0.135487,0,0.069964,,,,0,0,0,0,,,,,,,,,,,,,,,,,,"refused: System.map does not match the kernel running in guest g0: no 2 MiB-aligned placement has ""Linux version 6.1.0-0-fake-amd64"" at linux_banner\'s offset from _text"',
].join('\n')}\n`;

/** The header of the recorded run, with its folder moved to `dir` (fixed host and harness: no machine is asked). */
export function recordedHeader(dir: string): RunHeader {
  return {
    runId: RECORDED_RUN.runId,
    dir,
    scenario: parseScenario({
      name: 'golden',
      guests: 2,
      memoryMiB: 64,
      durationS: 0.02,
      tickS: 0.02,
      workload: { name: 'memchurn', params: { rate: 10 } },
      strategies: ['content', 'semantic'],
    }),
    owner: { pid: 4242, hostname: 'recorder' },
    startedAt: '2026-11-27T13:44:55.000Z',
    host: {
      hostname: 'recorder',
      os: 'Debian GNU/Linux 12 (bookworm)',
      kernel: '6.1.0-0-amd64',
      cpuModel: 'test CPU',
      cores: 2,
      memoryGiB: 8,
      node: 'v20.20.2',
    },
    harness: { version: '0.1.0', gitCommit: '012ec25039a5857f005940f48bd7b8f8032fd329', gitDirty: false },
    argv: ['run', '--scenario', 'golden'],
    image: fakeImage(),
    kernel: fakeKernel(),
    systemMap: fakeImage().path('systemMap'),
    hasher: 'xxh3-64 (libxxhash 0.8.1)',
  };
}
