/**
 * The semantic strategy's byte comparison against the C memcmp ceiling on the very pages it compares (its
 * kernel code ranges in the guests' RAM files, bench/native/ceiling.c "compare"): the scan as a whole (bytes
 * compared per CPU-second of scan(), banner check and groups included) and the compare alone (one native call,
 * harness/hashing/native-compare.ts, and the JS compare it replaced), on paused guests, best and median. The
 * native and JS compares must agree page for page, or the bench stops.
 */
import os from 'node:os';
import type { Guest } from '../harness/backends/types.ts';
import { compareAcrossGuests, compareEngineName } from '../harness/hashing/native-compare.ts';
import type { SemanticStrategy } from '../strategies/semantic.ts';
import type { StrategyContext } from '../strategies/types.ts';
import { rangeCompareCeiling } from './ceiling.ts';
import { best, median, timeRepeated } from './measure.ts';

export interface SemanticCompare {
  engine: string;
  pages: number;
  bytesCompared: number;
  /** Bytes compared per CPU-second of the whole scan (best, median of the passes). */
  scanGbpsBest: number;
  scanGbpsMedian: number;
  scanCpuMsMedian: number;
  /** The compare call alone, native and JS. */
  compareGbpsBest: number;
  jsCompareGbpsBest: number;
  /** C memcmp over the same ranges (best pass). */
  ceilingGbps: number;
  load: number[];
}

export async function semanticCompare(
  semantic: SemanticStrategy,
  guests: readonly Guest[],
  context: Omit<StrategyContext, 'residency'>,
  times: number,
): Promise<SemanticCompare> {
  await Promise.all(guests.map((g) => g.pause()));
  const scanContext = { ...context, residency: guests.map(() => undefined) };
  const first = await semantic.scan(scanContext); // placements known from here on
  const timing = await timeRepeated(times, () => semantic.scan(scanContext));
  // The kernel code range of each guest, as the strategy compares it (one build: the bench's guests are identical).
  const ranges = guests.map((g) => semantic.kernelPageRanges(g, scanContext as StrategyContext)?.[0]);
  if (ranges.some((r) => r === undefined)) throw new Error('semantic: kernels not located');
  const span = ranges[0]!.count;
  const views = guests.map((g, i) => g.pages(ranges[i]!.first, span));
  const firstDiff = new Uint16Array(span);
  const jsFirstDiff = new Uint16Array(span);
  let compared = compareAcrossGuests(views, span, firstDiff);
  const js = compareAcrossGuests(views, span, jsFirstDiff, 'js');
  if (js.identical !== compared.identical || js.bytesCompared !== compared.bytesCompared || jsFirstDiff.some((d, k) => d !== firstDiff[k]))
    throw new Error('semantic compare: native and JS disagree on the same pages');
  const native = await timeRepeated(times, () => (compared = compareAcrossGuests(views, span, firstDiff)));
  const jsTiming = await timeRepeated(times, () => compareAcrossGuests(views, span, jsFirstDiff, 'js'));
  const files = guests.map((g) => g.files.memory);
  if (files.some((f) => f === undefined)) throw new Error('semantic compare: the ceiling needs guest RAM files (shared-file RAM)');
  const ceiling = rangeCompareCeiling(
    files.map((file, i) => ({ file: file!, firstPage: ranges[i]!.first })),
    span,
  );
  const bytes = first.cost.bytesCompared;
  const gbps = (b: number, ms: number) => b / (ms / 1000) / 1e9;
  return {
    engine: compareEngineName(),
    pages: span,
    bytesCompared: bytes,
    scanGbpsBest: gbps(bytes, best(timing.cpuMs)),
    scanGbpsMedian: gbps(bytes, median(timing.cpuMs)),
    scanCpuMsMedian: median(timing.cpuMs),
    compareGbpsBest: gbps(compared.bytesCompared, best(native.cpuMs)),
    jsCompareGbpsBest: gbps(compared.bytesCompared, best(jsTiming.cpuMs)),
    ceilingGbps: ceiling.memcmpGbps,
    load: os.loadavg(),
  };
}
