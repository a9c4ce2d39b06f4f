/**
 * `npx tsx bench/union-replay.ts RECORDING [--passes N] [--json] [--profile FILE]`: semantic-union's tick, part by part, on a
 * recording (xme run --record; docs/recording.md), as the tick loop bills it (harness/experiment/tick-loop.ts):
 * the page classification, the strategy's scan (System.map route, class keys, free frames), the ledger's
 * reclaim and byte-confirmed apply, and the judge — each in thread CPU, per tick after the first (the first is
 * one-off work: kernels located, classifiers opened, every frame classified). mechanism is their sum less the
 * classification's "guest changed" check and the ledger's fingerprints of new frames, shown apart as check and
 * fingerprint (the instrument's, as in the tick loop). A replay reads the same memory
 * every pass, so passes differ only by the machine's noise and V8 (JIT, garbage collection): N passes, each
 * from nothing (new classifier, strategy and ledger), give medians per tick and part. --profile FILE
 * writes CPU profiles of the steady ticks (a JSON list of V8 profiles) to see inside a part (the
 * figures printed are then inflated by the profiler).
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import os from 'node:os';
import type { Guest } from '../harness/backends/types.ts';
import { TickPageClassifier } from '../harness/experiment/tick-page-classes.ts';
import { defaultHasher } from '../harness/hashing/page-hasher.ts';
import { openRecording } from '../harness/recording/recording.ts';
import { ReplayGuest } from '../harness/recording/replay-backend.ts';
import { AccountingLedger } from '../harness/sharing/ledger.ts';
import { threadCpuNs } from '../harness/util/thread-cpu.ts';
import { createStrategy } from '../strategies/registry.ts';
import { median } from './measure.ts';

const args = process.argv.slice(2);
const given = args.find((a) => !a.startsWith('--'));
if (!given) {
  process.stderr.write('usage: npx tsx bench/union-replay.ts RECORDING [--passes N] [--json]\n');
  process.exit(2);
}
const passesAt = args.indexOf('--passes');
const passes = passesAt >= 0 ? Number(args[passesAt + 1]) : 3;
const recording = openRecording(given);
const segment = recording.manifest.segments[0]!;
const guests: ReplayGuest[] = segment.guests.map((_, i) => new ReplayGuest(recording, segment, i, recording.image));
const hasher = await defaultHasher();
/**
 * check: of classify, the "guest changed" checks; fingerprint: of the ledger's apply, the new frames' hash and zero
 * test for CoW detection (both the instrument's, as in the tick loop); apply: the rest of it; mechanism: all but
 * check and fingerprint.
 */
const PARTS = ['classify', 'check', 'scan', 'apply', 'fingerprint', 'judge', 'mechanism'] as const;
type Part = (typeof PARTS)[number];
/** Per part, per tick (after the first), the CPU of each pass. */
const figures: Record<Part, number[][]> = Object.fromEntries(PARTS.map((p) => [p, segment.ticks.slice(1).map(() => [])])) as unknown as Record<
  Part,
  number[][]
>;
const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;
/**
 * With --profile FILE: a CPU profile (node:inspector, sampling every 100 µs) of the steady ticks only, from the
 * classification to the judge: the first ticks and the loading of each tick's memory are left out.
 */
const profileAt = args.indexOf('--profile');
const profiler = profileAt >= 0 ? new inspector.Session() : undefined;
const post = (method: string, params?: object) =>
  new Promise<unknown>((done, fail) => profiler!.post(method, params ?? {}, (error, result) => (error ? fail(error) : done(result))));
if (profiler) {
  profiler.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
}
const profiles: unknown[] = [];

for (let pass = 0; pass < passes; pass++) {
  const source = new TickPageClassifier(recording.kernel);
  const strategy = createStrategy('semantic-union');
  const ledger = new AccountingLedger(strategy.name, guests as readonly Guest[], hasher);
  for (let t = 0; t < segment.ticks.length; t++) {
    for (const guest of guests) guest.enter(t);
    if (t > 0) ledger.detectCow();
    if (profiler && t > 0) await post('Profiler.start');
    const c0 = threadCpuNs();
    const classified = source.classify(guests, true);
    const c1 = threadCpuNs();
    if ('refused' in classified) throw new Error(`tick ${t}: classes refused: ${classified.refused}`);
    const scan = await strategy.scan({
      guests,
      image: recording.image,
      kernel: recording.kernel,
      hasher,
      pageClasses: { guests: classified.guests, cpuMs: ms(c0, c1) },
      sharedFrameIds: ledger.sharedFrameIds(),
    });
    const c2 = threadCpuNs();
    if (scan.freeFrames) ledger.reclaimFree(scan.freeFrames);
    const applied = ledger.apply(scan.groups);
    const c3 = threadCpuNs();
    strategy.afterApply?.(applied);
    const c4 = threadCpuNs();
    if (profiler && t > 0) profiles.push(((await post('Profiler.stop')) as { profile: unknown }).profile);
    if (t === 0) continue;
    const check = classified.guests.reduce((sum, classes) => sum + classes.checkCpuMs, 0);
    const fingerprint = ledger.applyInstrumentCpuMs();
    const row = {
      classify: ms(c0, c1),
      check,
      scan: ms(c1, c2),
      apply: ms(c2, c3) - fingerprint,
      fingerprint,
      judge: ms(c3, c4),
      mechanism: ms(c0, c4) - check - fingerprint,
    };
    for (const part of PARTS) figures[part][t - 1]!.push(row[part]);
  }
}

const result = {
  recording: recording.dir,
  guests: guests.length,
  memory_mib: segment.memoryMiB,
  passes,
  load_average: os.loadavg(),
  per_tick_median_ms: Object.fromEntries(PARTS.map((p) => [p, figures[p].map((runs) => median(runs))])),
  median_of_ticks_ms: Object.fromEntries(PARTS.map((p) => [p, median(figures[p].map((runs) => median(runs)))])),
};
if (profiler) fs.writeFileSync(args[profileAt + 1]!, JSON.stringify(profiles));
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  process.stdout.write(
    `semantic-union on ${result.recording}: ${result.guests} × ${result.memory_mib} MiB, ${passes} passes, thread CPU per tick after the first (median of passes); load ${result.load_average.map((x) => x.toFixed(1)).join(' ')}\n`,
  );
  for (const part of PARTS)
    process.stdout.write(
      `  ${part.padEnd(10)} ${result.per_tick_median_ms[part]!.map((x) => x.toFixed(1).padStart(6)).join(' ')}   median ${result.median_of_ticks_ms[part]!.toFixed(1)} ms\n`,
    );
}
