/**
 * The harness process's own memory, apart from the guest RAM it maps. /proc/self/status splits the resident
 * set: RssAnon is the process's private memory (heap, buffers, copies of guest RAM it made), RssFile and
 * RssShmem are pages of mapped files — for QEMU guests, the guests' own RAM files the harness reads, which
 * are the guests' memory and would count once per guest mapped otherwise.
 */
import fs from 'node:fs';

export interface ProcessMemory {
  /** Private resident memory (RssAnon), MiB. */
  anonMiB: number;
  /** The whole resident set (VmRSS), guest RAM mapped from files included, MiB. */
  rssMiB: number;
}

export const OWN_MEMORY_METHOD =
  "RssAnon of /proc/self/status (the harness's private resident memory; guest RAM it maps from the guests' files is RssFile/RssShmem, not counted)";

/** Where /proc is not readable: Node's own figure for both (it includes mapped files). */
export function processMemory(): ProcessMemory {
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    const anon = kib('RssAnon');
    const rss = kib('VmRSS');
    if (Number.isFinite(anon) && Number.isFinite(rss)) return { anonMiB: anon / 1024, rssMiB: rss / 1024 };
  } catch {
    // not Linux, or /proc hidden
  }
  const rss = process.memoryUsage.rss() / 2 ** 20;
  return { anonMiB: rss, rssMiB: rss };
}

/** The peak of processMemory() over the samples taken. */
export class PeakMemory {
  private peak: ProcessMemory | undefined;

  sample(): void {
    const now = processMemory();
    this.peak = this.peak ? { anonMiB: Math.max(this.peak.anonMiB, now.anonMiB), rssMiB: Math.max(this.peak.rssMiB, now.rssMiB) } : now;
  }

  get value(): ProcessMemory | undefined {
    return this.peak;
  }
}
