/**
 * What one copy-on-write fault costs on this host, measured, never assumed: the CPU of one KSM CoW break,
 * by the method of the kernel's own selftest (tools/testing/selftests/mm/ksm_tests.c -C), in a small C
 * program (native/cow-break.c, built with gcc into the cache on first use). The tick loop models a strategy's
 * CoW handling as faults × this cost (cow_model_cpu_ms), because a real host pays per write-protect fault,
 * while xme's QEMU ledger detects writes by re-reading every shared page (its instrument, not the mechanism).
 *
 * - The host's KSM is held through a KsmSession (ksm-session.ts): every knob is saved and restored, the
 *   guard restores them if xme is killed, and KSM held by another xme process is waited for (2 minutes at
 *   most; then: not measured, and why).
 * - Needs root and a kernel with KSM (/sys/kernel/mm/ksm writable), gcc and libc headers.
 * - The result is cached per host boot (boot id + kernel release) in <cache>/host/cow-break.json, with the
 *   program's source digest: runs after the first on a boot read it instead of measuring (≈ 1 s per trial).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { cacheDir } from '../util/paths.ts';
import { findOnPath } from '../util/tools.ts';
import { errorMessage, XmeError } from '../util/errors.ts';
import { acquireFileLock } from '../util/file-lock.ts';
import { ksmAvailable, ksmSysfsDir } from './ksm-knobs.ts';
import { KsmSession } from './ksm-session.ts';
import type { KsmSettings } from './ksm-settings.ts';

const SOURCE = path.join(import.meta.dirname, 'native', 'cow-break.c');

export const COW_FAULT_COST_UNIT = 'ns CPU per CoW fault';

/** One run of the program: the timed writes to unmerged and then to merged pages. */
export interface CowBreakTrial {
  /** Pairs of identical pages; one write (to the first page of each pair) per pair. */
  pairs: number;
  /** Thread CPU per written page, ns: pages not merged (no fault) and merged (a CoW break each). */
  unmergedCpuNsPerPage: number;
  mergedCpuNsPerPage: number;
  /** The same in CLOCK_MONOTONIC_RAW wall time, as the selftest reports it. */
  unmergedWallNsPerPage: number;
  mergedWallNsPerPage: number;
  /** (merged − unmerged) per page: what the break itself costs. */
  cpuNsPerFault: number;
  wallNsPerFault: number;
  /** cow_ksm (/proc/vmstat) delta over the timed writes: the kernel's count of the breaks (host-wide; −1 if absent). */
  kernelBreaks: number;
  /** ksmd's full scans waited for before the pages were merged, and how long that took. */
  fullScans: number;
  waitMs: number;
}

export interface MeasuredCowFaultCost {
  status: 'measured';
  /** Median over the trials of cpuNsPerFault. */
  value: number;
  unit: typeof COW_FAULT_COST_UNIT;
  /** Median over the trials of wallNsPerFault (CLOCK_MONOTONIC_RAW). */
  wallNsPerFault: number;
  method: string;
  /** ISO time of the measurement. */
  measuredAt: string;
  /** The boot it holds for: a new boot or kernel measures again. */
  host: { bootId: string; kernelRelease: string };
  /** sha256 (16 hex digits) of native/cow-break.c: a changed program measures again. */
  programDigest: string;
  trials: CowBreakTrial[];
  /** 'measured for this run', or the cache file it was read from. */
  source: string;
}

export interface UnmeasuredCowFaultCost {
  status: 'not measured';
  /** Why (not root, no KSM, KSM in use, no gcc, …): said in run.json and in the run's warnings. */
  reason: string;
}

export type CowFaultCost = MeasuredCowFaultCost | UnmeasuredCowFaultCost;

export interface CowBreakOptions {
  /** Runs of the program, each with fresh pages (default 5); the value is their median. */
  trials?: number;
  /** Pairs per trial (default 2000, as the selftest). */
  pairs?: number;
  /** Longest wait for ksmd to merge one trial's pages, seconds (default 60). */
  timeoutS?: number;
  onNotice?: (message: string) => void;
}

/**
 * While measuring: ksmd scans 5000 pages every 10 ms (all 4000 of a trial's pages in one batch, so the two
 * full scans take a few batches), smart_scan off (a page is scanned every pass, as the selftest's kernel did),
 * zero pages not special (no page of a trial is zero).
 */
export const COW_BREAK_KSM_SETTINGS: KsmSettings = Object.freeze({
  pagesToScan: 5000,
  sleepMillisecs: 10,
  useZeroPages: false,
  smartScan: false,
  advisorMode: 'none',
});

/** sha256 (16 hex digits) of the program's source: a cached value from another version of it is not used. */
export function sourceDigest(): string {
  return createHash('sha256').update(fs.readFileSync(SOURCE)).digest('hex').slice(0, 16);
}

/** Build (once per source version) and return the program's path. */
export function cowBreakProgram(): string {
  const target = path.join(cacheDir(), 'native', `cow-break-${sourceDigest()}`);
  if (fs.existsSync(target)) return target;
  const gcc = findOnPath('gcc');
  if (!gcc) throw new XmeError('gcc not found: the CoW-break measurement is a small C program built on first use', 'install gcc and libc6-dev (Debian)');
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  execFileSync(gcc, ['-O2', '-o', temporary, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.renameSync(temporary, target);
  return target;
}

export function methodOf(trials: number, pairs: number): string {
  return (
    `KSM copy-on-write break, by the method of the kernel selftest tools/testing/selftests/mm/ksm_tests.c -C (harness/host/native/cow-break.c): ` +
    `${pairs} pairs of identical pages (each pair unlike the others) in private anonymous memory, MADV_MERGEABLE, ksmd waited for ≥ 2 full scans until merged (/proc/self/ksm_merging_pages); ` +
    `a one-byte write to the first page of each pair timed with CLOCK_THREAD_CPUTIME_ID (the fault runs on the writer's thread, user+sys) before merging (no fault) and after (one break each, counted by cow_ksm); ` +
    `per fault = (merged − unmerged) / pairs; median of ${trials} trials; KSM held through KsmSession (pages_to_scan ${COW_BREAK_KSM_SETTINGS.pagesToScan}, sleep_millisecs ${COW_BREAK_KSM_SETTINGS.sleepMillisecs}, knobs restored after)`
  );
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface ProgramOutput {
  pairs: number;
  unmerged_cpu_ns: number;
  unmerged_wall_ns: number;
  merged_cpu_ns: number;
  merged_wall_ns: number;
  cow_ksm_breaks: number;
  merging_pages_before: number;
  full_scans_waited: number;
  wait_ms: number;
}

/** One trial's figures from the program's output; refuses a trial whose pages were not all merged. */
export function trialOf(out: ProgramOutput): CowBreakTrial {
  const { pairs } = out;
  if (out.merging_pages_before >= 0 && out.merging_pages_before < 2 * pairs)
    throw new XmeError(`CoW-break measurement: only ${out.merging_pages_before} of ${2 * pairs} pages were merged before the timed writes`);
  if (out.cow_ksm_breaks >= 0 && out.cow_ksm_breaks < pairs)
    throw new XmeError(`CoW-break measurement: the kernel counted ${out.cow_ksm_breaks} CoW breaks (cow_ksm) for ${pairs} writes to merged pages`);
  return {
    pairs,
    unmergedCpuNsPerPage: out.unmerged_cpu_ns / pairs,
    mergedCpuNsPerPage: out.merged_cpu_ns / pairs,
    unmergedWallNsPerPage: out.unmerged_wall_ns / pairs,
    mergedWallNsPerPage: out.merged_wall_ns / pairs,
    cpuNsPerFault: (out.merged_cpu_ns - out.unmerged_cpu_ns) / pairs,
    wallNsPerFault: (out.merged_wall_ns - out.unmerged_wall_ns) / pairs,
    kernelBreaks: out.cow_ksm_breaks,
    fullScans: out.full_scans_waited,
    waitMs: out.wait_ms,
  };
}

/** This boot of this kernel: what a cached measurement must have been made on. */
export function currentHost(): { bootId: string; kernelRelease: string } {
  let bootId = 'unknown';
  try {
    bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || 'unknown';
  } catch {
    // no /proc: such a host has no KSM either
  }
  return { bootId, kernelRelease: os.release() };
}

/**
 * Measure now (no cache): hold KSM, run the program `trials` times, restore KSM. Throws an XmeError saying
 * why where it cannot (no KSM, not root, KSM held by another xme process, no gcc, pages not merged in time).
 */
export async function measureCowBreak(options: CowBreakOptions = {}): Promise<MeasuredCowFaultCost> {
  const trials = options.trials ?? 5;
  const pairs = options.pairs ?? 2000;
  const timeoutS = options.timeoutS ?? 60;
  const available = ksmAvailable();
  if (!available.ok) throw new XmeError(`KSM cannot be used: ${available.why}`, available.fix);
  const program = cowBreakProgram();
  const session = KsmSession.acquire(COW_BREAK_KSM_SETTINGS, options.onNotice ? { onNotice: options.onNotice } : {});
  const results: CowBreakTrial[] = [];
  try {
    for (let i = 0; i < trials; i++) {
      let stdout: string;
      try {
        ({ stdout } = await promisify(execFile)(program, [String(pairs), String(timeoutS), ksmSysfsDir()], { encoding: 'utf8' }));
      } catch (error) {
        const stderr = (error as { stderr?: string }).stderr?.trim();
        throw new XmeError(`CoW-break measurement failed: ${stderr || errorMessage(error)}`);
      }
      results.push(trialOf(JSON.parse(stdout) as ProgramOutput));
    }
  } finally {
    session.release();
  }
  return {
    status: 'measured',
    value: median(results.map((t) => t.cpuNsPerFault)),
    unit: COW_FAULT_COST_UNIT,
    wallNsPerFault: median(results.map((t) => t.wallNsPerFault)),
    method: methodOf(trials, pairs),
    measuredAt: new Date().toISOString(),
    host: currentHost(),
    programDigest: sourceDigest(),
    trials: results,
    source: 'measured for this run',
  };
}

/** Another xme process holding KSM (a KSM run) ends within minutes: wait for it rather than give up at once. */
async function measureWhenKsmFree(options: CowBreakOptions & { waitForKsmS?: number }): Promise<MeasuredCowFaultCost> {
  const deadline = Date.now() + (options.waitForKsmS ?? 120) * 1000;
  for (;;) {
    try {
      return await measureCowBreak(options);
    } catch (error) {
      if (!/KSM is in use by xme process/.test(errorMessage(error)) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

export function cowBreakCacheFile(): string {
  return path.join(cacheDir(), 'host', 'cow-break.json');
}

/** The cached measurement, if it was made on this boot of this kernel by this program; else undefined. */
export function cachedCowBreakCost(file = cowBreakCacheFile()): MeasuredCowFaultCost | undefined {
  let stored: MeasuredCowFaultCost;
  try {
    stored = JSON.parse(fs.readFileSync(file, 'utf8')) as MeasuredCowFaultCost;
  } catch {
    return undefined;
  }
  const host = currentHost();
  if (stored?.status !== 'measured' || !Number.isFinite(stored.value) || stored.unit !== COW_FAULT_COST_UNIT) return undefined;
  if (stored.host?.bootId !== host.bootId || host.bootId === 'unknown' || stored.host.kernelRelease !== host.kernelRelease) return undefined;
  if (stored.programDigest !== sourceDigest()) return undefined;
  return { ...stored, source: `cache: ${file} (measured ${stored.measuredAt}, this boot)` };
}

function writeCache(file: string, cost: MeasuredCowFaultCost): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(cost, null, 2)}\n`);
  fs.renameSync(temporary, file);
}

/**
 * The per-fault cost for a run: this boot's cached value, else (with `measure`) measured now and cached. Never
 * throws: where it cannot be had, the reason (for run.json and the run's warnings). Two xme processes that
 * both find no cache take turns (a lock file): the second reads what the first measured.
 */
export async function hostCowBreakCost(
  options: CowBreakOptions & { measure: boolean; say?: (line: string) => void; waitForKsmS?: number },
): Promise<CowFaultCost> {
  const file = cowBreakCacheFile();
  const cached = cachedCowBreakCost(file);
  if (cached) return cached;
  if (!options.measure)
    return { status: 'not measured', reason: `no measurement of this boot in ${file}, and this run does not measure (its guests are not the host's own)` };
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const release = await acquireFileLock(`${file}.lock`, 180_000);
    try {
      const again = cachedCowBreakCost(file);
      if (again) return again;
      options.say?.("measuring the cost of one CoW fault on this host (KSM's CoW break, once per boot) …");
      const measured = await measureWhenKsmFree(options);
      writeCache(file, measured);
      options.say?.(
        `CoW break: ${(measured.value / 1000).toFixed(2)} µs CPU per fault (trials ${measured.trials.map((t) => (t.cpuNsPerFault / 1000).toFixed(2)).join(', ')} µs)`,
      );
      return measured;
    } finally {
      release();
    }
  } catch (error) {
    return { status: 'not measured', reason: errorMessage(error) };
  }
}
