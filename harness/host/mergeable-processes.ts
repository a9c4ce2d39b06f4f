/**
 * Which processes on the host have memory marked for KSM (MADV_MERGEABLE, or prctl PR_SET_MEMORY_MERGE): the
 * "mg" flag in a mapping's VmFlags line of /proc/<pid>/smaps. KSM is host-wide: ksmd scans all of them, and
 * the kernel's counters (cow_ksm, pages_sharing, ksmd's CPU) count all of them. A run that compares KSM with
 * other strategies names the processes that are not its own guests, so that a reader knows what those
 * host-wide figures include.
 */
import fs from 'node:fs';

export interface MergeableProcess {
  pid: number;
  command: string;
  /** KiB of mappings with the "mg" flag. */
  mergeableKiB: number;
}

/** Every process except `exclude` with mergeable mappings (processes that vanish or cannot be read are skipped). */
export function mergeableProcesses(exclude: ReadonlySet<number>): MergeableProcess[] {
  const found: MergeableProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (exclude.has(pid) || pid === process.pid) continue;
    let smaps: string;
    try {
      smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
    } catch {
      continue; // gone, or a kernel thread
    }
    const mergeableKiB = mergeableSize(smaps);
    if (mergeableKiB === 0) continue;
    let command = '?';
    try {
      command = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      // gone meanwhile
    }
    found.push({ pid, command, mergeableKiB });
  }
  return found;
}

/** KiB of the mappings in an smaps text whose VmFlags include "mg". */
export function mergeableSize(smaps: string): number {
  let total = 0;
  let size = 0;
  for (const line of smaps.split('\n')) {
    if (line.startsWith('Size:')) size = Number(/(\d+)/.exec(line)?.[1] ?? 0);
    else if (line.startsWith('VmFlags:') && line.split(/\s+/).includes('mg')) total += size;
  }
  return total;
}
