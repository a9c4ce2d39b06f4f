/**
 * What KSM did: the host-wide counters in sysfs, cow_ksm in /proc/vmstat, the CPU ksmd used, and one
 * process's share (/proc/<pid>/ksm_stat). A counter this kernel does not have reads as NaN, never as 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';
import { ksmSysfsDir } from './ksm-knobs.ts';

export interface KsmCounters {
  /** KSM pages in use (one per distinct content). */
  pagesShared: number;
  /** Further mappings of those pages: how many pages are saved (ksm_zero_pages come on top). */
  pagesSharing: number;
  pagesUnshared: number;
  pagesVolatile: number;
  /** Pages ksmd has scanned since boot. */
  pagesScanned: number;
  fullScans: number;
  /** Pages merged with the kernel's zero page (use_zero_pages=1). */
  ksmZeroPages: number;
  /** Bytes saved minus the bytes of KSM's own metadata; may be negative. */
  generalProfit: number;
  /** Copy-on-write faults of KSM pages since boot, host-wide (/proc/vmstat cow_ksm). */
  cowKsm: number;
  /** CPU time ksmd has used since boot, ns (field 1 of /proc/<ksmd>/schedstat). */
  ksmdCpuNs: number;
}

const SYSFS_COUNTERS: [keyof KsmCounters, string][] = [
  ['pagesShared', 'pages_shared'],
  ['pagesSharing', 'pages_sharing'],
  ['pagesUnshared', 'pages_unshared'],
  ['pagesVolatile', 'pages_volatile'],
  ['pagesScanned', 'pages_scanned'],
  ['fullScans', 'full_scans'],
  ['ksmZeroPages', 'ksm_zero_pages'],
  ['generalProfit', 'general_profit'],
];

function readNumber(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return NaN;
    throw error;
  }
}

/** "name value" (or "name: value") lines, e.g. /proc/vmstat or /proc/<pid>/ksm_stat, by name. */
export function parseNameValueLines(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([\w.-]+):?\s+(\S.*?)\s*$/.exec(line);
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

function cowKsm(): number {
  const value = parseNameValueLines(fs.readFileSync('/proc/vmstat', 'utf8')).cow_ksm;
  return value === undefined ? NaN : Number(value);
}

let ksmdPid: number | undefined;

function readComm(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The PID of the ksmd kernel thread, undefined if there is none. */
export function findKsmdPid(): number | undefined {
  if (ksmdPid !== undefined && readComm(ksmdPid) === 'ksmd') return ksmdPid;
  ksmdPid = undefined;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (readComm(pid) === 'ksmd') return (ksmdPid = pid);
  }
  return undefined;
}

/**
 * ksmd's CPU time, ns. It is a kernel thread, so /proc/<pid>/stat's utime stays ~0 and stime is in clock
 * ticks; schedstat's first field is its exact run time.
 */
export function ksmdCpuNs(): number {
  const pid = findKsmdPid();
  if (pid === undefined) return NaN;
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return NaN;
  }
}

export function readKsmCounters(): KsmCounters {
  const dir = ksmSysfsDir();
  const counters = {} as KsmCounters;
  for (const [key, file] of SYSFS_COUNTERS) counters[key] = readNumber(path.join(dir, file));
  counters.cowKsm = cowKsm();
  counters.ksmdCpuNs = ksmdCpuNs();
  return counters;
}

export interface ProcessKsmStat {
  /** Pages of the process that ksmd tracks (scanned and kept in its trees). */
  rmapItems: number;
  /** Pages of the process that are merged with others (sharing a KSM page). */
  mergingPages: number;
  /** Pages of the process merged with the kernel's zero page. */
  zeroPages: number;
  /** Bytes the process saves minus its KSM metadata; may be negative. */
  processProfit: number;
}

/** Every line of /proc/<pid>/ksm_stat by name (numbers and words alike: ksm_merge_any no, ksm_mergeable yes). */
export function readProcessKsmStatLines(pid: number): Record<string, string> {
  try {
    return parseNameValueLines(fs.readFileSync(`/proc/${pid}/ksm_stat`, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new XmeError(`KSM: process ${pid} has no /proc/${pid}/ksm_stat`, 'the process has exited, or the kernel is older than 6.1');
    }
    throw error;
  }
}

export function readProcessKsmStat(pid: number): ProcessKsmStat {
  const lines = readProcessKsmStatLines(pid);
  const number = (name: string): number => (lines[name] === undefined ? NaN : Number(lines[name]));
  return {
    rmapItems: number('ksm_rmap_items'),
    mergingPages: number('ksm_merging_pages'),
    zeroPages: number('ksm_zero_pages'),
    processProfit: number('ksm_process_profit'),
  };
}
