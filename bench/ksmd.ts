/**
 * ksmd's pages per CPU-second, live: KSM on (harness/host/ksm.ts: every knob saved and restored), guests with
 * anonymous mergeable RAM, then pages_scanned and ksmd's schedstat CPU over two fixed windows:
 *  - merging: from KSM on until ksmd has finished two full scans (the first records every page's checksum,
 *    the second compares and merges the pages whose checksum held): ksmd reads every page, the work a content
 *    pass does on every page. On these guests that takes about a second, so it is its own window;
 *  - steady: the next window, once the guests have converged: a page already merged costs ksmd no read at
 *    all (it is write-protected, so it cannot have changed), which a content scan without write protection
 *    cannot skip. Both are reported; their ratio says how much of ksmd's rate is that shortcut.
 * KSM is host-wide: another holder makes acquire fail, and we wait and retry.
 */
import { KSM_DEFAULT_SETTINGS, KsmSession, readKsmCounters, type KsmCounters } from '../harness/host/ksm.ts';
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

function between(before: KsmCounters, after: KsmCounters, windowS: number): KsmdFigures {
  const pagesScanned = after.pagesScanned - before.pagesScanned;
  const cpuS = (after.ksmdCpuNs - before.ksmdCpuNs) / 1e9;
  return { pagesScanned, cpuS, pagesPerCpuS: pagesScanned / cpuS, windowS, fullScans: after.fullScans - before.fullScans };
}

export async function measureKsmd(windowS: number, say: (line: string) => void): Promise<{ merging: KsmdFigures; steady: KsmdFigures }> {
  const start = readKsmCounters(); // before KSM is on: ksmd's counters since boot
  const session = await acquire(say);
  try {
    const began = Date.now();
    let middle = readKsmCounters();
    while (middle.fullScans - start.fullScans < 2 && Date.now() - began < 60_000) {
      await sleep(50);
      middle = readKsmCounters();
    }
    const mergingS = (Date.now() - began) / 1000;
    await sleep(windowS * 1000);
    const end = readKsmCounters();
    return { merging: between(start, middle, mergingS), steady: between(middle, end, windowS) };
  } finally {
    session.release();
  }
}
