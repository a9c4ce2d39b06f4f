/**
 * Steady-state tick CPU of a strategy, as the tick loop bills it (harness/experiment/tick-loop.ts): CoW
 * detection + scan + the ledger's verified apply, on the harness thread (plus the scan's worker threads), guests paused while scored and
 * running between ticks. The first tick (one-off work: locating kernels) is left out.
 *
 * The same tick split as the tick loop's (sharing/ledger.ts, "COST: MECHANISM AND INSTRUMENT"): the mechanism
 * is the scan and the apply, plus the CoW handling modelled as faults × the per-fault cost measured on this
 * host (when given); the instrument is the CoW detection by re-read and the residency snapshot.
 */
import type { Guest } from '../harness/backends/types.ts';
import { AccountingLedger, cowModelCpuMs } from '../harness/sharing/ledger.ts';
import type { MeasuredCowFaultCost } from '../harness/host/cow-break.ts';
import type { Strategy, StrategyContext } from '../strategies/types.ts';
import { threadCpuNs } from '../harness/util/thread-cpu.ts';
import { median } from './measure.ts';

export interface TickFigures {
  /** Medians over the ticks after the first, each part on its own (so the parts need not add up exactly). */
  tickCpuMs: number;
  scanCpuMs: number;
  /** The ledger's apply alone (byte confirmation of the proposal; re-proposals of shared groups are most of it for content). */
  applyCpuMs: number;
  /** Scan + apply + modelled CoW handling. */
  mechanismCpuMs: number;
  /** The modelled CoW handling alone (undefined without a per-fault cost). */
  cowModelCpuMs: number | undefined;
  /** CoW detection by re-read + residency snapshot. */
  instrumentCpuMs: number;
  cowDetectCpuMs: number;
  residencyCpuMs: number;
  cowFaults: number;
  ticks: number;
  sharedPages: number;
}

const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;

export async function steadyTicks(
  strategy: Strategy,
  context: Omit<StrategyContext, 'residency'>,
  ticks: number,
  betweenMs: number,
  perFault?: MeasuredCowFaultCost,
): Promise<TickFigures> {
  const guests: readonly Guest[] = context.guests;
  const ledger = new AccountingLedger(strategy.name, guests, context.hasher);
  const parts = {
    tick: [] as number[],
    scan: [] as number[],
    apply: [] as number[],
    mechanism: [] as number[],
    cowModel: [] as number[],
    instrument: [] as number[],
    detect: [] as number[],
    residency: [] as number[],
  };
  for (let tick = 0; tick <= ticks; tick++) {
    await Promise.all(guests.map((g) => g.resume()));
    await new Promise((resolve) => setTimeout(resolve, betweenMs));
    await Promise.all(guests.map((g) => g.pause()));
    const snapshot = threadCpuNs();
    const residency = guests.map((g) => g.hostResidency?.residentPages());
    const snapshotEnd = threadCpuNs();
    ledger.setHostResidency(residency);
    const faultsBefore = ledger.stats().cowFaults;
    const start = threadCpuNs();
    if (tick > 0) ledger.detectCow();
    const scanStart = threadCpuNs();
    const scan = await strategy.scan({ ...context, residency });
    const scanEnd = threadCpuNs();
    ledger.apply(scan.groups);
    const end = threadCpuNs();
    if (tick === 0) continue;
    // A scan on worker threads (content's pass) reports their CPU, which this thread's clock does not see: added, as the tick loop does.
    const workers = scan.threads?.workerCpuMs ?? 0;
    const faults = ledger.stats().cowFaults - faultsBefore;
    const cowModel = perFault ? cowModelCpuMs(faults, perFault) : undefined;
    parts.tick.push(ms(start, end) + workers);
    parts.scan.push(ms(scanStart, scanEnd) + workers);
    parts.apply.push(ms(scanEnd, end));
    parts.mechanism.push(ms(scanStart, end) + workers + (cowModel ?? 0));
    if (cowModel !== undefined) parts.cowModel.push(cowModel);
    parts.detect.push(ms(start, scanStart));
    parts.residency.push(ms(snapshot, snapshotEnd));
    parts.instrument.push(ms(start, scanStart) + ms(snapshot, snapshotEnd));
  }
  const stats = ledger.stats();
  return {
    tickCpuMs: median(parts.tick),
    scanCpuMs: median(parts.scan),
    applyCpuMs: median(parts.apply),
    mechanismCpuMs: median(parts.mechanism),
    cowModelCpuMs: parts.cowModel.length ? median(parts.cowModel) : undefined,
    instrumentCpuMs: median(parts.instrument),
    cowDetectCpuMs: median(parts.detect),
    residencyCpuMs: median(parts.residency),
    cowFaults: stats.cowFaults,
    ticks,
    sharedPages: stats.sharedPages,
  };
}
