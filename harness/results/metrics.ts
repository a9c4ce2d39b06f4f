/**
 * The figures of summary.csv: what each means, its unit and how it was measured. Every summary row carries
 * its unit and method so that a number read out of context still says what it is.
 */
import type { MetricDefinition } from '../sharing/types.ts';
import { OWN_MEMORY_METHOD } from '../util/process-memory.ts';
import { SAVED_CLASSES, type SavedClass } from '../introspection/saved-by-class.ts';

const THREAD_CPU =
  'CPU time of the harness thread that ran it (clock_gettime CLOCK_THREAD_CPUTIME_ID; other threads such as V8 background GC not counted), strategies in rotated order';

export const METRICS = {
  shared_pages: {
    unit: 'pages',
    method:
      'at the last tick: guest pages in shared state (mapped to a shared frame, not written since; a lone survivor of a written pair included, as Xen counts shr_pages)',
  },
  frames_saved: { unit: 'pages', method: 'shared pages − distinct frames backing them, at the last tick (guest-physical: counts never-touched pages too)' },
  frames_saved_pct: { unit: '% of guest memory', method: 'frames_saved / all guest pages × 100' },
  host_frames_saved: {
    unit: 'pages',
    method:
      'frames saved counting only pages the host really backs (QEMU: allocated in the guest RAM file, SEEK_DATA/SEEK_HOLE; Xen: all pages are populated): what a real host would free',
  },
  frames_saved_zero: { unit: 'pages', method: 'the part of frames_saved on all-zero frames: a zero frame backing m pages saves m − 1, at the last tick' },
  frames_saved_within_guest: {
    unit: 'pages',
    method: 'the part of frames_saved inside one guest: a non-zero frame backing m pages of k guests saves m − k within guests, at the last tick',
  },
  frames_saved_across_guests: {
    unit: 'pages',
    method: 'the part of frames_saved between guests: a non-zero frame backing pages of k guests saves k − 1 across guests, at the last tick',
  },
  zero_pages_shared: { unit: 'pages', method: 'shared pages whose bytes are all zero (checked by the ledger), at the last tick' },
  reclaimed_free_pages: {
    unit: 'pages',
    method:
      "free frames in reclaimed state at the last tick: found free (buddy lists) by the guest kernel's page classes at a pause and counted apart from frames_saved, never byte-verified (their stale bytes are not data; sharing/ledger.ts 'FREE PAGES RECLAIMED'); guest-physical",
  },
  host_reclaimed_free_pages: {
    unit: 'pages',
    method: 'reclaimed_free_pages counting only frames the host backs (QEMU: allocated in the guest RAM file), at the last tick',
  },
  reclaim_faults: {
    unit: 'faults',
    method:
      "reclaimed free frames that a later tick's page classes no longer found free (allocated since: on a real host, a fault on the zero frame at the first write); a lower bound: a frame allocated and freed again between two ticks is not seen",
  },
  ...(Object.fromEntries(
    SAVED_CLASSES.map((kind) => [
      `saved_${kind}_frames`,
      {
        unit: 'pages',
        method: `the part of frames_saved whose pages are of class ${kind} by the guest kernels' page classes, at the last tick that had classes (experiment/tick-attribution.ts: a frame of m pages saves m − 1, its keeper the smallest page; scenarios/README.md, "Where sharing comes from")`,
      },
    ]),
  ) as Record<`saved_${SavedClass}_frames`, MetricDefinition>),
  content_saved_found_frames: {
    unit: 'pages',
    method:
      "of the content strategy's saved pages at the last tick that had classes, those this strategy's own ledger also saves or reclaims (shared or reclaimed free), found without a content scan",
  },
  content_saved_found_pct: {
    unit: "% of content's frames saved",
    method: 'content_saved_found_frames / frames_saved of the content strategy at the same tick × 100',
  },
  frames_saved_and_reclaimed: {
    unit: 'pages',
    method: 'frames_saved + reclaimed_free_pages at the last tick: byte-verified sharing and free-frame reclaim together',
  },
  cow_faults: { unit: 'faults', method: 'writes to pages in shared state (see run.json cowDefinition); method of the ledger that counted' },
  cow_copies: { unit: 'faults', method: 'CoW faults that needed a copy (the frame still had other users); the rest hit a lone survivor' },
  cow_faults_per_min: { unit: 'faults/min', method: 'cow_faults / time between the first and the last tick' },
  scan_cpu_ms: { unit: 'ms per scan', method: `strategy.scan only, mean over the ticks after the first (steady state); ${THREAD_CPU}` },
  first_scan_cpu_ms: {
    unit: 'ms',
    method: `the first scan, which includes one-off work (semantic: locating each kernel, checking System.map against kallsyms); ${THREAD_CPU}`,
  },
  first_scan_cpu_ms_per_guest: { unit: 'ms per guest', method: 'first_scan_cpu_ms / guests scored together' },
  scan_cpu_ms_per_gib: { unit: 'ms per GiB scanned guest memory', method: 'scan_cpu_ms / GiB of guest RAM of all guests' },
  cow_cpu_ms: {
    unit: 'ms per tick',
    method: `CoW detection (accounted: re-reading every shared page; enforced: reading the hypervisor's counters), mean over ticks after the first; ${THREAD_CPU}`,
  },
  verify_cpu_ms: {
    unit: 'ms per tick',
    method: `the ledger's byte verification before sharing (enforced: and the sharing hypercalls), mean over ticks after the first; ${THREAD_CPU}`,
  },
  tick_cpu_ms: {
    unit: 'ms per tick',
    method: `whole cost of the strategy per tick: CoW detection + scan + verification, mean over ticks after the first; ${THREAD_CPU}`,
  },
  mechanism_cpu_ms: {
    unit: 'ms per tick',
    method: `what the sharing mechanism costs per tick as a real system would pay it: scan + byte confirmation + share calls (harness thread) + the CoW handling modelled per fault (cow_model_cpu_ms), mean over ticks after the first; ${THREAD_CPU}`,
  },
  mechanism_cpu_ms_per_guest: { unit: 'ms per tick per guest', method: 'mechanism_cpu_ms / guests scored together' },
  cow_model_cpu_ms: {
    unit: 'ms per tick',
    method:
      'CoW handling modelled per fault: CoW faults of the tick × the per-fault cost measured on this host (run.json cowFaultCost: one KSM CoW break, as the kernel selftest ksm_tests.c -C measures it), mean over ticks after the first; absent where the cost was not measured',
  },
  instrument_cpu_ms: {
    unit: 'ms per tick',
    method: `what xme pays to watch the mechanism per tick, which a real system does not: CoW detection by re-reading every shared page and the hash of each frame as it is made (accounted), the enforced ledger's re-read and counter reads, the observation of KSM (pagemap, kpageflags, ksm_stat), the page classification's "guest changed" check (classify_check_cpu_ms), plus the tick's residency snapshot and copy of anonymous RAM (once per tick, counted on every strategy's row), mean over ticks after the first; ${THREAD_CPU}`,
  },
  classify_cpu_ms: {
    unit: 'ms per tick',
    method: `the page classification of all guests (struct page read from guest memory, experiment/tick-page-classes.ts), done once per tick and billed whole to each strategy that reads page classes (it is in that strategy's scan_cpu_ms and tick_cpu_ms, and but for classify_check_cpu_ms in its mechanism_cpu_ms), mean over ticks after the first; ${THREAD_CPU}`,
  },
  classify_check_cpu_ms: {
    unit: 'ms per tick',
    method: `of classify_cpu_ms, the "guest changed" check: each guest's struct page array and page counters read again after classifying, to prove the guest did not run while it was read. xme's proof that its own pause held, which a real system that pauses its guests does not need: in instrument_cpu_ms, not in mechanism_cpu_ms; mean over ticks after the first; ${THREAD_CPU}`,
  },
  scan_cpu_ratio_vs_semantic: { unit: 'ratio', method: 'scan only: steady-state scan_cpu_ms of this strategy / that of semantic, same repetition' },
  tick_cpu_ratio_vs_semantic: {
    unit: 'ratio',
    method:
      "whole tick: steady-state tick_cpu_ms of this strategy / that of semantic, same repetition (includes xme's instrument: see mechanism_cpu_ratio_vs_semantic)",
  },
  mechanism_cpu_ratio_vs_semantic: {
    unit: 'ratio',
    method:
      "mechanism only: steady-state mechanism_cpu_ms of this strategy / that of semantic, same repetition: the comparison a real system would see, without xme's instrument",
  },
  kernel_code_shareability_pct: { unit: '%', method: 'pages of [_text,_etext) byte-identical in all guests / pages in the range × 100, last tick' },
  kernel_rodata_shareability_pct: { unit: '%', method: 'pages of [__start_rodata,__end_rodata) identical in all guests / pages × 100, last tick' },
  refused_scans: { unit: 'scans', method: 'scans in which the strategy refused to share (reason in samples.csv status and run.json)' },
  cpu_ms_per_s: {
    unit: 'ms CPU per s',
    method:
      'Σ tick_cpu_ms over the ticks after the first / seconds between the first and the last tick: what keeping sharing up to date costs per second of run (a KSM row counts ksmd, see cpu_method in samples.csv)',
  },
  workload_ops_per_s: {
    unit: 'ops/s',
    method:
      "guest-reported XME-PROGRESS ops over host time between the lines' arrival (consoles polled every 100 ms; time a guest spent paused counts), mean over guests and ticks",
  },
  boot_s: {
    unit: 's',
    method: "the slowest guest's boot to ready (all guests of the repetition booted at once), host clock; the same on every strategy's row",
  },
  first_result_s: {
    unit: 's',
    method:
      "from the start of provisioning to the end of the first scored tick (boot, warm-up, every strategy's first scan), host clock; the same on every strategy's row",
  },
  harness_memory_mib: { unit: 'MiB', method: `${OWN_MEMORY_METHOD}; peak over the ticks; the same on every strategy's row` },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRICS;
