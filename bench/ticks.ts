/**
 * Steady-state tick CPU of a strategy, as the tick loop bills it (harness/experiment/tick-loop.ts): CoW
 * detection + scan + the ledger's verified apply, on the harness thread, guests paused while scored and
 * running between ticks. The first tick (one-off work: locating kernels) is left out.
 */
import type { Guest } from '../harness/backends/types.ts';
import { AccountingLedger } from '../harness/sharing/ledger.ts';
import type { Strategy, StrategyContext } from '../strategies/types.ts';
import { threadCpuNs } from '../harness/util/thread-cpu.ts';
import { median } from './measure.ts';

export interface TickFigures {
  tickCpuMs: number;
  scanCpuMs: number;
  ticks: number;
  sharedPages: number;
}

export async function steadyTicks(strategy: Strategy, context: Omit<StrategyContext, 'residency'>, ticks: number, betweenMs: number): Promise<TickFigures> {
  const guests: readonly Guest[] = context.guests;
  const ledger = new AccountingLedger(strategy.name, guests, context.hasher);
  const tickCpu: number[] = [];
  const scanCpu: number[] = [];
  for (let tick = 0; tick <= ticks; tick++) {
    await Promise.all(guests.map((g) => g.resume()));
    await new Promise((resolve) => setTimeout(resolve, betweenMs));
    await Promise.all(guests.map((g) => g.pause()));
    const residency = guests.map((g) => g.hostResidency?.residentPages());
    ledger.setHostResidency(residency);
    const start = threadCpuNs();
    if (tick > 0) ledger.detectCow();
    const scanStart = threadCpuNs();
    const scan = await strategy.scan({ ...context, residency });
    const scanEnd = threadCpuNs();
    ledger.apply(scan.groups);
    const end = threadCpuNs();
    if (tick === 0) continue;
    tickCpu.push(Number(end - start) / 1e6);
    scanCpu.push(Number(scanEnd - scanStart) / 1e6);
  }
  return { tickCpuMs: median(tickCpu), scanCpuMs: median(scanCpu), ticks, sharedPages: ledger.stats().sharedPages };
}
