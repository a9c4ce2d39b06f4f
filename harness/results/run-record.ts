/**
 * run.json: everything needed to reproduce and to judge a run. Written when the run starts (status
 * 'running', so that a killed run is found: experiment/abandoned-runs.ts) and again, sealed, when it ends.
 * `RunRecord` is the file's one type: the runner writes it (runRecord), `xme merge` writes merged ones, and
 * compare, report and merge read it back through readRunRecord, which checks what they rely on.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BackendInfo } from '../backends/types.ts';
import type { AnyImageManifest } from '../images/manifest.ts';
import type { KernelVersion } from '../introspection/bzimage.ts';
import type { KernelLayout } from '../introspection/kernel-layout.ts';
import { COW_DEFINITION, type CowFaultCosts, type Ledger } from '../sharing/ledger.ts';
import type { Scenario } from '../scenario/scenario.ts';
import type { RunOwner } from '../util/process-identity.ts';
import { errorMessage, XmeError } from '../util/errors.ts';
import type { HarnessInfo, HostInfo } from './provenance.ts';
import type { RunEnd, RunHeader, RunStatus } from './run.ts';
import { CPU_METHOD } from './samples.ts';

export const RUN_RECORD_FILE = 'run.json';

/** What xme merge adds to a variant's run.json: the cells it was merged from. */
export interface MergedFrom {
  suite: string;
  digest: string;
  cells: { id: string; seed: number | undefined; shard: number; host: string; dir: string }[];
  missingCells: string[];
  shards: unknown[];
}

export interface RunRecord {
  schema: 2;
  runId: string;
  status: RunStatus;
  /** The harness process that writes the record; absent in merged records (no process owns them). */
  owner: RunOwner | undefined;
  startedAt: string | undefined;
  endedAt: string | undefined;
  scenario: Scenario;
  host: HostInfo;
  harness: HarnessInfo;
  argv: string[] | undefined;
  backend: BackendInfo | { name: string; note: string };
  sharingMode: string;
  /** The manifest of the image booted, of either kind (a system image's has kind 'system'), and where it is. */
  image: AnyImageManifest & { dir: string };
  kernel: { version: KernelVersion; systemMap: string; layout: KernelLayout };
  hasher: string;
  cowMethod: string;
  cowDefinition: string;
  cpuMethod: string;
  /**
   * The per-fault cost of a CoW fault by model (sharing/ledger.ts CowFaultModel), with which cow_model_cpu_ms
   * models the CoW handling: the value, its unit, how and when it was measured (harness/host/cow-break.ts), or
   * why it was not (then cow_model_cpu_ms is empty).
   */
  cowFaultCost: CowFaultCosts;
  repetitionsCompleted: number;
  warnings: string[];
  notes: string[];
  merged?: MergedFrom;
  files: { samples: string; summary: string; logs: string };
}

const SHARING_MODES: Record<Ledger['mode'], string> = {
  enforced: 'enforced (the hypervisor backs byte-verified pages by one frame; counts are its own)',
  accounted: 'accounted (the backend does not merge pages; the ledger accounts what each strategy would share)',
};

/** What run.json says when the runner was given no per-fault cost (runExperiment called without one: a test's stand-ins). */
const NO_COW_FAULT_COST: CowFaultCosts = {
  'linux-ksm-cow-break': {
    status: 'not measured',
    reason: 'the runner was given no per-fault cost (it is measured by the composition of xme run, harness/cli/run-outputs.ts)',
  },
};

/** run.json's content: `end` undefined while the run is running. Key order is the file's, kept stable. */
export function runRecord(run: RunHeader, end: RunEnd | undefined): RunRecord {
  return {
    schema: 2,
    runId: run.runId,
    status: end?.status ?? 'running',
    owner: run.owner,
    startedAt: run.startedAt,
    endedAt: end?.endedAt,
    scenario: run.scenario,
    host: run.host,
    harness: run.harness,
    argv: run.argv,
    backend: end?.backend ?? { name: run.scenario.backend, note: 'not started yet' },
    sharingMode: end?.sharingModes.length ? end.sharingModes.map((mode) => SHARING_MODES[mode]).join('; ') : 'not known yet (no ledger made)',
    image: { ...run.image.manifest, dir: run.image.dir },
    kernel: { version: run.kernel.version, systemMap: run.systemMap, layout: run.kernel.layout },
    hasher: run.hasher,
    cowMethod: end?.cowMethods.length ? end.cowMethods.join('; ') : 'not known yet (no ledger made)',
    cowDefinition: COW_DEFINITION,
    cpuMethod: CPU_METHOD,
    cowFaultCost: run.cowFaultCosts ?? NO_COW_FAULT_COST,
    repetitionsCompleted: end?.repetitions.length ?? 0,
    warnings: [...(end?.warnings ?? [])],
    notes: [...(end?.notes ?? [])],
    files: { samples: 'samples.csv', summary: 'summary.csv', logs: 'logs/' },
  };
}

/** Writes a JSON file atomically (write then rename), so a reader never sees half a file. */
export function writeJsonAtomically(file: string, value: unknown): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, `${JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`);
  fs.renameSync(temporary, file);
}

export function writeRunRecord(dir: string, record: RunRecord): void {
  writeJsonAtomically(path.join(dir, RUN_RECORD_FILE), record);
}

/**
 * A run.json as read back: files written by older xme versions (or by hand) may lack any field, so every
 * field but the ones a reader always needs is optional and checked for its type where it is used. runId
 * (the folder's name when absent), status and the scenario's name are always there ('unknown' when absent).
 */
export type StoredRunRecord = { [K in keyof RunRecord]?: unknown } & {
  runId: string;
  status: string;
  scenarioName: string;
  /** The record as it is in the file. */
  raw: Record<string, unknown>;
};

/** Parses a run record from its content (e.g. the one the runner is about to write); `fallbackId` names it when it has no runId. */
export function storedRunRecord(json: unknown, fallbackId: string, file = 'run.json'): StoredRunRecord {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new XmeError(`${file} is not a run record: not a JSON object`);
  const raw = json as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  const scenario = typeof raw.scenario === 'string' ? raw.scenario : text(object(raw.scenario).name);
  return { ...raw, raw, runId: text(raw.runId) ?? fallbackId, status: text(raw.status) ?? 'unknown', scenarioName: scenario ?? 'unknown' };
}

/** Reads <dir>/run.json; a missing or unreadable file is an XmeError naming it. */
export function readRunRecord(dir: string, hint?: string): StoredRunRecord {
  const file = path.join(dir, RUN_RECORD_FILE);
  if (!fs.existsSync(file)) throw new XmeError(`${dir} is not a results folder: it has no run.json`, hint);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new XmeError(`${file} is not readable JSON: ${errorMessage(error)}`, hint);
  }
  return storedRunRecord(json, path.basename(dir), file);
}

/** A field of a stored record as an object (empty when it is not one): for reading nested fields of older files. */
export function object(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * A stored record written by this very xme version (checked by the caller, e.g. merge compares harness
 * commits), as the full type: the fields every such record has are checked, so a hand-edited or truncated
 * file is refused with the field's name rather than read as undefined.
 */
export function runRecordOfThisVersion(stored: StoredRunRecord, file: string): RunRecord {
  const fail = (field: string) => {
    throw new XmeError(`${file} is not a run record of this xme version: field '${field}' is missing or of the wrong type`);
  };
  if (stored.schema !== 2) fail('schema');
  for (const field of ['scenario', 'host', 'harness', 'image', 'kernel'] as const) if (typeof stored[field] !== 'object' || stored[field] === null) fail(field);
  for (const field of ['warnings', 'notes'] as const)
    if (!Array.isArray(stored[field]) || !(stored[field] as unknown[]).every((w) => typeof w === 'string')) fail(field);
  if (typeof object(stored.image).files !== 'object') fail('image.files');
  // Summaries are recomputed from these (merge): each must say its guest count and memory size.
  const repetitions = object(stored.raw).repetitions;
  if (repetitions !== undefined) {
    if (!Array.isArray(repetitions)) fail('repetitions');
    (repetitions as unknown[]).forEach((r, i) => {
      for (const field of ['guests', 'memoryMiB', 'repetition'] as const) if (typeof object(r)[field] !== 'number') fail(`repetitions[${i}].${field}`);
    });
  }
  return stored.raw as unknown as RunRecord;
}
