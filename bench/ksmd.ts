/**
 * ksmd's pages per CPU-second, live: KSM on (harness/host/ksm.ts: every knob saved and restored), guests with
 * anonymous mergeable RAM, then pages_scanned and ksmd's schedstat CPU over a fixed window after a warm-up.
 * KSM is host-wide: another holder makes acquire fail, and we wait and retry.
 */
import { KSM_DEFAULT_SETTINGS, KsmSession, readKsmCounters } from '../harness/host/ksm.ts';
import { XmeError } from '../harness/util/errors.ts';

export interface KsmdFigures {
  pagesScanned: number;
  cpuS: number;
  pagesPerCpuS: number;
  windowS: number;
  fullScans: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function acquire(say: (line: string) => void): Promise<KsmSession> {
  for (let attempt = 0; ; attempt++) {
    try {
      return KsmSession.acquire(KSM_DEFAULT_SETTINGS, { onNotice: say });
    } catch (error) {
      if (!(error instanceof XmeError) || attempt >= 30) throw error;
      say(`KSM is held by another process (${error.message}); retrying in 20 s`);
      await sleep(20_000);
    }
  }
}

export async function measureKsmd(warmupS: number, windowS: number, say: (line: string) => void): Promise<KsmdFigures> {
  const session = await acquire(say);
  try {
    await sleep(warmupS * 1000);
    const before = readKsmCounters();
    await sleep(windowS * 1000);
    const after = readKsmCounters();
    const pagesScanned = after.pagesScanned - before.pagesScanned;
    const cpuS = (after.ksmdCpuNs - before.ksmdCpuNs) / 1e9;
    return { pagesScanned, cpuS, pagesPerCpuS: pagesScanned / cpuS, windowS, fullScans: after.fullScans - before.fullScans };
  } finally {
    session.release();
  }
}
