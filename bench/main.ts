/**
 * `npm run bench [-- --json]`: throughput goals live here, not in timed unit tests. Everything is measured in
 * this one run (the machine is shared and noisy: compare ratios, not absolute figures from different runs).
 *  1. Page hashing on one core (XXH3 through koffi per page, WASM, SHA-1) and the C ceiling
 *     (bench/native/ceiling.c, built and run now): XXH3 and memcmp per 4 KiB page of a heap buffer.
 *  2. On 2 × 256 MiB idle guests with shared-file RAM: the content strategy's whole pass (read + hash + index
 *     + group + byte-confirm, i.e. scan()), in thread CPU (best and median of the passes), against the C ceiling
 *     on the heap buffer and on the very same resident guest pages; the pass on 1 and 2 threads side by side
 *     (bench/scan-threads.ts: wall, and CPU summed over the threads); semantic's byte compare in GB/s beside the
 *     C memcmp ceiling on the same kernel code pages (bench/semantic-compare.ts); index bytes per guest page; steady-state
 *     tick CPU (CoW detection + scan + ledger apply) of semantic, content, content-incremental and hybrid, split
 *     into the mechanism (scan + apply + CoW handling modelled as faults × the per-fault cost) and xme's
 *     instrument (CoW detection by re-read + residency snapshot), as the tick loop splits it.
 *  0. First, the cost of one CoW fault on this host (harness/host/cow-break.ts: KSM's CoW break as the kernel
 *     selftest ksm_tests.c -C measures it; this boot's cached value if there is one).
 *  3. On 2 × 256 MiB idle guests with anonymous mergeable RAM: ksmd's pages per CPU-second (KSM on through
 *     KsmSession, knobs restored) while merging and once steady (bench/ksmd.ts says why both), and the content
 *     pass on those same guests: on the tick copy, as in a run, with the copy's CPU apart and counted in.
 * --json writes bench/results.json (git-ignored).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Bench } from 'tinybench';
import { loadNativeHasher, loadWasmHasher, defaultHasher } from '../harness/hashing/page-hasher.ts';
import { QemuBackend } from '../harness/backends/qemu/qemu-backend.ts';
import type { Guest, GuestRamKind } from '../harness/backends/types.ts';
import { buildImage } from '../harness/images/build.ts';
import { kernelInfo } from '../harness/introspection/kernel-info.ts';
import { ContentStrategy } from '../strategies/content.ts';
import { SemanticStrategy } from '../strategies/semantic.ts';
import { scanEngineFor } from '../strategies/scan-engine-choice.ts';
import type { StrategyContext } from '../strategies/types.ts';
import { bufferCeiling, guestFilesCeiling, parallelCeiling } from './ceiling.ts';
import { best, median, timeRepeated } from './measure.ts';
import { steadyTicks } from './ticks.ts';
import { measureKsmd } from './ksmd.ts';
import { measureThreadCpu } from '../harness/util/thread-cpu.ts';
import { hostCowBreakCost } from '../harness/host/cow-break.ts';
import { createStrategy } from '../strategies/registry.ts';
import os from 'node:os';
import { threadedPasses } from './scan-threads.ts';
import { semanticCompare } from './semantic-compare.ts';

const PAGE = 4096;
const GUEST_MIB = 256;
const json = process.argv.includes('--json');
const say = (line: string) => process.stdout.write(`${line}\n`);

async function hashing(): Promise<Record<string, number>> {
  const bytes = 64 * 2 ** 20;
  const pages = bytes / PAGE;
  const data = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 8) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const out = new BigUint64Array(pages);
  const native = loadNativeHasher();
  const wasm = await loadWasmHasher();
  const bench = new Bench({ time: 1000, warmupTime: 200 });
  if (native) bench.add('xxh3 koffi per page', () => native.hashPages(data, out));
  bench.add('xxh64 wasm', () => wasm.hashPages(data, out));
  bench.add('sha1 node:crypto', () => {
    for (let i = 0; i < pages; i++)
      createHash('sha1')
        .update(data.subarray(i * PAGE, (i + 1) * PAGE))
        .digest();
  });
  await bench.run();
  return Object.fromEntries(
    bench.tasks.map((t) => {
      if (t.result.state !== 'completed') throw new Error(`${t.name}: ${t.result.state}`);
      return [t.name, bytes / (t.result.latency.mean / 1000) / 1e9];
    }),
  );
}

async function withGuests<T>(guestRam: GuestRamKind, work: (guests: Guest[], context: Omit<StrategyContext, 'residency'>) => Promise<T>): Promise<T> {
  const image = (await buildImage('cloud')).image;
  const backend = await QemuBackend.create();
  try {
    say(`booting 2 × ${GUEST_MIB} MiB idle guests (${guestRam}) …`);
    const guests = await backend.provision(image, 2, { memoryMiB: GUEST_MIB, kaslr: false, guestRam, workload: { name: 'idle' } });
    await new Promise((resolve) => setTimeout(resolve, 5000)); // let the idle guests settle after boot
    return await work(guests, { guests, image, kernel: kernelInfo(image), hasher: await defaultHasher() });
  } finally {
    await backend.close();
  }
}

/**
 * The content pass, `times` times on paused guests: best / median thread CPU and wall, pages read. Where guest
 * RAM can only be read by copying it (anonymous RAM, from outside QEMU), the pass reads the tick copy, as in a
 * run, and the copy's CPU is measured apart (copyCpuMs): it is how xme reaches this backend's memory, which a
 * hypervisor (or ksmd, in the kernel) reads in place.
 */
async function contentPasses(guests: Guest[], context: Omit<StrategyContext, 'residency'>, times: number) {
  await Promise.all(guests.map((g) => g.pause()));
  const residency = guests.map((g) => g.hostResidency?.residentPages());
  // The first copy also faults in the copy's buffer (kept between ticks in a run): time the copies after it.
  const copyTimes: number[] = [];
  if (guests.some((g) => g.tickCopy)) {
    for (let i = 0; i < 4; i++) {
      guests.forEach((g) => g.tickCopy?.dropTickCopy());
      const copy = await measureThreadCpu(() => guests.forEach((g, k) => g.tickCopy?.copyForTick(residency[k])));
      if (i > 0) copyTimes.push(copy.cpuMs);
    }
  }
  const copied = copyTimes.length > 0 ? { cpuMs: median(copyTimes) } : undefined;
  // One thread: these figures are per CPU-second of one core, against the C ceiling on one core (threads: threadedPasses).
  const content = new ContentStrategy({ zeroPages: true, scanThreads: 1 });
  let last = await content.scan({ ...context, residency }); // warm: allocations, first touch of the mappings
  const timing = await timeRepeated(times, async () => {
    last = await content.scan({ ...context, residency });
  });
  const bytes = last.cost.pagesRead * PAGE;
  return {
    pagesRead: last.cost.pagesRead,
    guestPages: guests.reduce((sum, g) => sum + g.memoryPages, 0),
    cpuMsBest: best(timing.cpuMs),
    cpuMsMedian: median(timing.cpuMs),
    wallMsMedian: median(timing.wallMs),
    gbpsBest: bytes / (best(timing.cpuMs) / 1000) / 1e9,
    gbpsMedian: bytes / (median(timing.cpuMs) / 1000) / 1e9,
    pagesPerCpuS: last.cost.pagesRead / (best(timing.cpuMs) / 1000),
    bytesHashed: last.cost.bytesHashed,
    bytesCompared: last.cost.bytesCompared,
    groups: last.groups.length,
    indexBytesPerPage: content.indexBytesPerPage(guests),
    copyCpuMs: copied?.cpuMs,
    /** Pages per CPU-second with the copy counted in (the copy once, as in a run's tick). */
    pagesPerCpuSWithCopy: copied ? last.cost.pagesRead / ((best(timing.cpuMs) + copied.cpuMs) / 1000) : undefined,
    residency,
  };
}

const load = () =>
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
const cowCost = await hostCowBreakCost({ measure: true, say });
const perFault = cowCost.status === 'measured' ? cowCost : undefined;
say(
  perFault
    ? `CoW fault (KSM CoW break): ${(perFault.value / 1000).toFixed(2)} µs CPU per fault, trials ${perFault.trials.map((t) => (t.cpuNsPerFault / 1000).toFixed(2)).join(', ')} µs (${perFault.source}); ${load()}`
    : `CoW fault cost not measured (${cowCost.status === 'not measured' ? cowCost.reason : ''}): the CoW model is left out`,
);
say(`scan engine: ${scanEngineFor(await defaultHasher()).name}`);
const hashingResults = await hashing();
say('page hashing, one core (GB/s):');
for (const [name, rate] of Object.entries(hashingResults)) say(`  ${name.padEnd(22)} ${rate.toFixed(2)}`);
const ceiling = bufferCeiling();
say(`C ceiling, one core, 64 MiB heap buffer: XXH3 ${ceiling.xxh3Gbps.toFixed(2)} GB/s, memcmp ${ceiling.memcmpGbps.toFixed(2)} GB/s (best of 10)`);

const shared = await withGuests('shared-file', async (guests, context) => {
  const semantic = new SemanticStrategy({ rodata: false, route: 'memory' });
  await semantic.scan({ ...context, residency: guests.map(() => undefined) }); // locate the kernels once
  const pass = await contentPasses(guests, context, 15);
  say('content pass on 1 and 2 threads, alternating (15 each) …');
  const capacity = await parallelCeiling();
  const threaded = await threadedPasses(guests, context, 15);
  say(threadTable(threaded));
  say(capacityLine(capacity));
  say('semantic compare against the C memcmp ceiling on the same pages (200 passes: the JIT warm, as in a steady state) …');
  const semanticBytes = await semanticCompare(semantic, guests, context, 200);
  say(semanticLines(semanticBytes));
  const files = guests.map((g) => g.files.memory).filter((f): f is string => f !== undefined);
  const guestCeiling = guestFilesCeiling(files);
  say('steady-state ticks (5 each, 0.5 s apart) …');
  const semanticTicks = await steadyTicks(semantic, context, 5, 500, perFault);
  const semanticLoad = load();
  const contentTicks = await steadyTicks(new ContentStrategy({ zeroPages: true }), context, 5, 500, perFault);
  const contentLoad = load();
  const incrementalTicks = await steadyTicks(createStrategy('content-incremental', {}), context, 5, 500, perFault);
  const incrementalLoad = load();
  const hybridTicks = await steadyTicks(createStrategy('hybrid', { route: 'memory' }), context, 5, 500, perFault);
  const hybridLoad = load();
  return {
    pass: { ...pass, residency: undefined },
    threaded,
    capacity,
    semanticBytes,
    guestCeiling,
    semanticTicks,
    contentTicks,
    ticks: [
      { name: 'semantic', figures: semanticTicks, load: semanticLoad },
      { name: 'content', figures: contentTicks, load: contentLoad },
      { name: 'content-incremental', figures: incrementalTicks, load: incrementalLoad },
      { name: 'hybrid', figures: hybridTicks, load: hybridLoad },
    ],
  };
});

const anonymous = await withGuests('anonymous-mergeable', async (guests, context) => {
  const pass = await contentPasses(guests, context, 5);
  for (const guest of guests) guest.tickCopy?.dropTickCopy();
  await Promise.all(guests.map((g) => g.resume()));
  say('ksmd: KSM on (pages_to_scan 5000, sleep 20 ms): its first two full scans (merging), then 20 s (steady) …');
  const ksmd = await measureKsmd(20, say);
  return { pass: { ...pass, residency: undefined }, ksmd };
});

const results = {
  c_xxh3_gbps: ceiling.xxh3Gbps,
  c_memcmp_gbps: ceiling.memcmpGbps,
  c_xxh3_guest_pages_gbps: shared.guestCeiling.xxh3Gbps,
  content_pass_threads: Object.fromEntries(
    shared.threaded.passes.map((p) => [p.threads, { wall_ms: p.wallMsMedian, cpu_ms: p.cpuMsMedian, worker_cpu_ms: p.workerCpuMsMedian, groups: p.groups }]),
  ),
  host_parallel_capacity: shared.capacity.twoWallGbps / shared.capacity.oneWallGbps,
  content_pass_wall_2_over_1: shared.threaded.passes[1]!.wallMsMedian / shared.threaded.passes[0]!.wallMsMedian,
  semantic_compare_engine: shared.semanticBytes.engine,
  semantic_scan_gbps: shared.semanticBytes.scanGbpsBest,
  semantic_scan_gbps_median: shared.semanticBytes.scanGbpsMedian,
  semantic_compare_gbps: shared.semanticBytes.compareGbpsBest,
  semantic_js_compare_gbps: shared.semanticBytes.jsCompareGbpsBest,
  semantic_memcmp_ceiling_gbps: shared.semanticBytes.ceilingGbps,
  content_pass_gbps: shared.pass.gbpsBest,
  content_pass_gbps_median: shared.pass.gbpsMedian,
  content_pass_cpu_ms: shared.pass.cpuMsBest,
  content_pass_wall_ms: shared.pass.wallMsMedian,
  content_pass_pages_read: shared.pass.pagesRead,
  content_pass_guest_pages: shared.pass.guestPages,
  content_pages_per_cpu_s: shared.pass.pagesPerCpuS,
  content_anon_pass_gbps: anonymous.pass.gbpsBest,
  content_anon_pages_per_cpu_s: anonymous.pass.pagesPerCpuS,
  content_anon_copy_cpu_ms: anonymous.pass.copyCpuMs ?? Number.NaN,
  content_anon_pages_per_cpu_s_with_copy: anonymous.pass.pagesPerCpuSWithCopy ?? Number.NaN,
  ksmd_pages_per_cpu_s: anonymous.ksmd.merging.pagesPerCpuS,
  ksmd_pages_scanned: anonymous.ksmd.merging.pagesScanned,
  ksmd_cpu_s: anonymous.ksmd.merging.cpuS,
  ksmd_window_s: anonymous.ksmd.merging.windowS,
  ksmd_steady_pages_per_cpu_s: anonymous.ksmd.steady.pagesPerCpuS,
  ksmd_steady_pages_scanned: anonymous.ksmd.steady.pagesScanned,
  ksmd_steady_cpu_s: anonymous.ksmd.steady.cpuS,
  index_bytes_per_page: shared.pass.indexBytesPerPage,
  semantic_tick_cpu_ms: shared.semanticTicks.tickCpuMs,
  semantic_scan_cpu_ms: shared.semanticTicks.scanCpuMs,
  content_tick_cpu_ms: shared.contentTicks.tickCpuMs,
  content_scan_cpu_ms: shared.contentTicks.scanCpuMs,
  cow_fault_cpu_ns: perFault?.value ?? Number.NaN,
  ticks_split: Object.fromEntries(
    shared.ticks.map(({ name, figures }) => [
      name,
      {
        tick_cpu_ms: figures.tickCpuMs,
        mechanism_cpu_ms: figures.mechanismCpuMs,
        cow_model_cpu_ms: figures.cowModelCpuMs ?? Number.NaN,
        instrument_cpu_ms: figures.instrumentCpuMs,
        cow_detect_cpu_ms: figures.cowDetectCpuMs,
        residency_cpu_ms: figures.residencyCpuMs,
        scan_cpu_ms: figures.scanCpuMs,
        apply_cpu_ms: figures.applyCpuMs,
        cow_faults: figures.cowFaults,
        shared_pages: figures.sharedPages,
      },
    ]),
  ),
  hashing_gbps: hashingResults,
};
function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`;
}
say(`
content pass on 2 × ${GUEST_MIB} MiB idle guests (shared-file; ${shared.pass.pagesRead} of ${shared.pass.guestPages} pages resident and read):
  CPU ${shared.pass.cpuMsBest.toFixed(1)} ms best, ${shared.pass.cpuMsMedian.toFixed(1)} ms median (wall ${shared.pass.wallMsMedian.toFixed(1)} ms median), ${shared.pass.groups} groups
  ${results.content_pass_gbps.toFixed(2)} GB/s of pages read per CPU-second (median ${results.content_pass_gbps_median.toFixed(2)})
  = ${ratio(results.content_pass_gbps, results.c_xxh3_gbps)} the C XXH3 ceiling on a heap buffer (goal ≥ 0.7×), ${ratio(results.content_pass_gbps, results.c_xxh3_guest_pages_gbps)} the C XXH3 ceiling on the same guest pages (${results.c_xxh3_guest_pages_gbps.toFixed(2)} GB/s)
  hashed ${(shared.pass.bytesHashed / 2 ** 20).toFixed(0)} MiB, compared ${(shared.pass.bytesCompared / 2 ** 20).toFixed(0)} MiB
  index ${results.index_bytes_per_page.toFixed(2)} bytes per guest page (goal ≤ 24)
pages per CPU-second: content ${(results.content_pages_per_cpu_s / 1e6).toFixed(2)} M (shared-file), ${(results.content_anon_pages_per_cpu_s / 1e6).toFixed(2)} M (the same anonymous guests as ksmd, on the tick copy; ${(results.content_anon_pages_per_cpu_s_with_copy / 1e6).toFixed(2)} M with the copy's ${results.content_anon_copy_cpu_ms.toFixed(1)} ms counted in: median of 3 copies after the first)
  ksmd merging (its first two full scans, ${anonymous.ksmd.merging.windowS.toFixed(1)} s from KSM on): ${(results.ksmd_pages_per_cpu_s / 1e6).toFixed(2)} M (${anonymous.ksmd.merging.pagesScanned} pages in ${anonymous.ksmd.merging.cpuS.toFixed(2)} CPU-s, ${anonymous.ksmd.merging.fullScans} full scans)
  ksmd steady (next ${anonymous.ksmd.steady.windowS} s; a merged page costs it no read): ${(results.ksmd_steady_pages_per_cpu_s / 1e6).toFixed(2)} M (${anonymous.ksmd.steady.pagesScanned} pages in ${anonymous.ksmd.steady.cpuS.toFixed(2)} CPU-s, ${anonymous.ksmd.steady.fullScans} full scans)
  content / ksmd merging = ${ratio(results.content_pages_per_cpu_s, results.ksmd_pages_per_cpu_s)} (shared-file), ${ratio(results.content_anon_pages_per_cpu_s, results.ksmd_pages_per_cpu_s)} (same anonymous guests; ${ratio(results.content_anon_pages_per_cpu_s_with_copy, results.ksmd_pages_per_cpu_s)} with the copy) (goal ≥ 2×)
  content / ksmd steady = ${ratio(results.content_pages_per_cpu_s, results.ksmd_steady_pages_per_cpu_s)} (shared-file), ${ratio(results.content_anon_pages_per_cpu_s, results.ksmd_steady_pages_per_cpu_s)} (anonymous): steady ksmd skips merged pages unread, which only a scanner whose shares are write-protected can do
${threadTable(shared.threaded)}
${capacityLine(shared.capacity)}
${semanticLines(shared.semanticBytes)}
steady-state tick CPU (median of 5; CoW detection + scan + ledger apply): semantic ${results.semantic_tick_cpu_ms.toFixed(2)} ms (scan ${results.semantic_scan_cpu_ms.toFixed(2)}), content ${results.content_tick_cpu_ms.toFixed(2)} ms (scan ${results.content_scan_cpu_ms.toFixed(2)}); content / semantic = ${ratio(results.content_tick_cpu_ms, results.semantic_tick_cpu_ms)}
${splitTable(shared.ticks)}`);

function loadOf(l: number[]): string {
  return `load average ${l.map((v) => v.toFixed(2)).join(' ')}`;
}

/** The content pass on 1 and 2 threads: wall and CPU summed over the threads that worked. */
function threadTable({ passes, load: l }: Awaited<ReturnType<typeof threadedPasses>>): string {
  const [one, two] = passes;
  const lines = [
    `content pass by threads (same paused guests, passes alternating, median of 15; CPU = harness thread + scan threads; ${loadOf(l)}):`,
    ...passes.map(
      (p) =>
        `  ${String(p.threads).padStart(2)} thread${p.threads > 1 ? 's' : ' '}  wall ${p.wallMsMedian.toFixed(1).padStart(7)} ms  CPU ${p.cpuMsMedian.toFixed(1).padStart(7)} ms (scan threads ${p.workerCpuMsMedian.toFixed(1)})  ${p.groups} groups`,
    ),
  ];
  if (one && two)
    lines.push(`  2-thread wall = ${ratio(two.wallMsMedian, one.wallMsMedian)} one thread's (goal ≤ 0.6×); CPU ${ratio(two.cpuMsMedian, one.cpuMsMedian)}`);
  return lines.join('\n');
}

/** Whether the host had a second core to give when the threads were measured. */
function capacityLine(c: Awaited<ReturnType<typeof parallelCeiling>>): string {
  return `  host's second core just before (C XXH3, wall): one process ${c.oneWallGbps.toFixed(2)} GB/s, two at once ${c.twoWallGbps.toFixed(2)} GB/s together = ${ratio(c.twoWallGbps, c.oneWallGbps)} (2× = a free second core; ≈ 1× = taken, and 2 threads cannot beat 1)`;
}

/** Semantic's byte compare beside the C memcmp ceiling on the same pages. */
function semanticLines(c: Awaited<ReturnType<typeof semanticCompare>>): string {
  return [
    `semantic compare on ${c.pages} kernel code pages × 2 guests (${(c.bytesCompared / 2 ** 20).toFixed(1)} MiB compared per scan; ${c.engine}; ${loadOf(c.load)}):`,
    `  whole scan ${c.scanGbpsBest.toFixed(2)} GB/s per CPU-second (median ${c.scanGbpsMedian.toFixed(2)}, ${c.scanCpuMsMedian.toFixed(2)} ms) = ${ratio(c.scanGbpsBest, c.ceilingGbps)} the C memcmp ceiling on the same pages (${c.ceilingGbps.toFixed(2)} GB/s; goal ≥ 0.7×)`,
    `  compare call alone ${c.compareGbpsBest.toFixed(2)} GB/s (${ratio(c.compareGbpsBest, c.ceilingGbps)}); the JS compare it replaced ${c.jsCompareGbpsBest.toFixed(2)} GB/s (${ratio(c.jsCompareGbpsBest, c.ceilingGbps)})`,
  ].join('\n');
}

/** The tick split per strategy: the whole tick as run, the mechanism's part, xme's instrument, and the ratios to semantic. */
function splitTable(rows: { name: string; figures: Awaited<ReturnType<typeof steadyTicks>>; load: string }[]): string {
  const semantic = rows.find((r) => r.name === 'semantic')!.figures;
  const f = (v: number | undefined, digits = 2) => (v === undefined ? '–' : v.toFixed(digits));
  const lines = [
    'tick split on 2 × 256 MiB idle guests (shared-file), ms CPU per tick, median of 5 ticks each part:',
    '  mechanism = scan (all its threads) + apply (byte confirmation) + CoW model (faults × per-fault cost); instrument = CoW detection by re-read + residency snapshot',
    `  ${'strategy'.padEnd(20)} ${'tick'.padStart(7)} ${'mech'.padStart(7)} ${'(apply)'.padStart(7)} ${'(CoW model)'.padStart(11)} ${'instr'.padStart(7)} ${'(re-read'.padStart(8)} ${'residency)'.padStart(10)} ${'shared'.padStart(7)} ${'faults'.padStart(6)} ${'tick ×sem'.padStart(9)} ${'mech ×sem'.padStart(9)}  load`,
  ];
  for (const { name, figures: t, load: l } of rows) {
    lines.push(
      `  ${name.padEnd(20)} ${f(t.tickCpuMs).padStart(7)} ${f(t.mechanismCpuMs).padStart(7)} ${f(t.applyCpuMs).padStart(7)} ${f(t.cowModelCpuMs, 4).padStart(11)} ${f(t.instrumentCpuMs).padStart(7)} ${f(t.cowDetectCpuMs).padStart(8)} ${f(t.residencyCpuMs).padStart(10)} ${String(t.sharedPages).padStart(7)} ${String(t.cowFaults).padStart(6)} ${ratio(t.tickCpuMs, semantic.tickCpuMs).padStart(9)} ${ratio(t.mechanismCpuMs, semantic.mechanismCpuMs).padStart(9)}  ${l}`,
    );
  }
  return lines.join('\n');
}
if (json) {
  const file = path.join(import.meta.dirname, 'results.json');
  fs.writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2)}\n`);
  say(`written to ${file}`);
}
