/**
 * `xme merge`: shard folders (shard-folder.ts) → one merged folder, refusing whatever would make the merged
 * numbers mean something else than an unsharded run's: shards of different suites (or of the full and the
 * quick version), of different xme versions or commits, booting images with different sha256s, a cell
 * present twice, or cells missing (unless allowed, then listed).
 *
 *     <out>/suite.json         the suite, every shard (host, harness, Slurm task), every cell and where it ran,
 *                              the missing cells
 *     <out>/<variant>/         one ordinary results folder per suite entry (scenario × its overrides, e.g.
 *                              thesis-kernel-code.qemu.kaslr1): samples.csv (its cells' rows concatenated),
 *                              summary.csv (recomputed over all its repetitions by summaryRows), overhead.csv
 *                              when the scenario has a baseline, run.json (with every shard's host and harness)
 *
 * A folder per variant, not one for the whole suite: results folders hold one scenario run each (the report
 * labels a run by its scenario.kaslr, draws one line per strategy × repetition), so each variant stays
 * readable by `xme report` and `xme compare` as it is; `xme report <out>` reads them all (mergedRunDirs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';
import type { HarnessInfo } from '../results/provenance.ts';
import { writeJsonAtomically } from '../results/run-record.ts';
import { summaryRows } from '../experiment/summary.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import { writeCsv } from '../results/csv.ts';
import { SUMMARY_SCHEMA } from '../results/summary.ts';
import { SLOWDOWN_SCHEMA } from '../results/overhead.ts';
import { readRunRecord, runRecordOfThisVersion, writeRunRecord, type RunRecord, type StoredRunRecord } from '../results/run-record.ts';
import { slowdownRows } from '../experiment/slowdown.ts';
import type { Scenario } from '../scenario/scenario.ts';
import { readJson, readShardRecord, CELL_KIND, type CellRecord, type ShardRecord } from './shard-folder.ts';

export const MERGE_KIND = 'xme-suite-merge';

export interface MergeOptions {
  out: string;
  allowMissing?: boolean;
}

export interface MergeOutcome {
  out: string;
  /** The merged results folders, one per variant with at least one cell. */
  variantDirs: string[];
  cells: number;
  missing: string[];
}

interface FoundCell {
  id: string;
  dir: string;
  shardDir: string;
  shard: ShardRecord;
  record: CellRecord;
  run: RunRecord;
}

const HINT = 'merge the shard folders of one `xme suite run` (same suite, same --quick, same xme commit and image)';

const version = (h: HarnessInfo | undefined) => (h ? `${h.version} (${h.gitCommit}${h.gitDirty ? ', uncommitted changes' : ''})` : 'unknown');

/** The sha256s of an image's files, one string per image: equal strings, same bytes booted. */
function imageFingerprint(run: RunRecord): string {
  const files: Record<string, { sha256?: string } | undefined> = run.image.files;
  return Object.keys(files)
    .sort()
    .map((k) => `${k}=${files[k]?.sha256 ?? '?'}`)
    .join(' ');
}

/** The harness of a stored record, when it says (for the version check: a record of another version may have another shape). */
function harnessOf(run: StoredRunRecord): HarnessInfo | undefined {
  const harness = run.harness as Partial<HarnessInfo> | undefined;
  return typeof harness?.gitCommit === 'string' && typeof harness.version === 'string' ? (harness as HarnessInfo) : undefined;
}

function list(ids: readonly string[], max = 20): string {
  return ids.length <= max ? ids.join(', ') : `${ids.slice(0, max).join(', ')} and ${ids.length - max} more`;
}

export function mergeShards(shardDirs: readonly string[], options: MergeOptions): MergeOutcome {
  if (shardDirs.length === 0) throw new XmeError('nothing to merge', 'give the shard folders of xme suite run');
  const given = shardDirs.map((dir) => path.resolve(dir));
  const twice = given.find((dir, i) => given.indexOf(dir) !== i);
  if (twice) throw new XmeError(`shard folder ${twice} is given twice: its cells would be in the merge twice`, 'give each shard folder once');
  const shards = given.map((dir) => ({ dir, record: readShardRecord(dir) }));
  const first = shards[0]!;

  // One suite: same name, same quick flag, same cells with the same scenarios (the digest covers all three).
  for (const other of shards.slice(1)) {
    const a = first.record;
    const b = other.record;
    if (a.suite !== b.suite || a.quick !== b.quick || a.digest !== b.digest) {
      const what = (r: ShardRecord) => `suite ${r.suite}${r.quick ? ' --quick' : ''} (digest ${r.digest.slice(0, 12)})`;
      throw new XmeError(`shard folders of different suites: ${first.dir} is ${what(a)}, ${other.dir} is ${what(b)}`, HINT);
    }
    if (a.harness.version !== b.harness.version || a.harness.gitCommit !== b.harness.gitCommit) {
      throw new XmeError(
        `shard folders from different xme versions: ${first.dir} ran xme ${version(a.harness)}, ${other.dir} ran xme ${version(b.harness)}`,
        HINT,
      );
    }
  }

  // Every cell folder of every shard; a cell in two places is refused, not silently picked.
  const cells = new Map<string, FoundCell>();
  for (const shard of shards) {
    for (const entry of fs.readdirSync(shard.dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isDirectory()) continue;
      const dir = path.join(shard.dir, entry.name);
      if (!fs.existsSync(path.join(dir, 'cell.json'))) continue;
      const record = readJson(path.join(dir, 'cell.json'), 'a cell folder of xme suite run') as CellRecord;
      if (record.kind !== CELL_KIND) throw new XmeError(`${dir}/cell.json is not a cell record`, HINT);
      if (record.digest !== first.record.digest)
        throw new XmeError(`${dir} is a cell of another suite (digest ${record.digest.slice(0, 12)}, not ${first.record.digest.slice(0, 12)})`, HINT);
      const stored = readRunRecord(dir, 'every cell folder has the run.json of its run');
      const harness = harnessOf(stored);
      if (harness?.gitCommit !== first.record.harness.gitCommit || harness?.version !== first.record.harness.version) {
        throw new XmeError(
          `shard folders from different xme versions: ${dir} ran xme ${version(harness)}, ${first.dir} ran xme ${version(first.record.harness)}`,
          HINT,
        );
      }
      const run = runRecordOfThisVersion(stored, path.join(dir, 'run.json'));
      const seen = cells.get(record.cell.id);
      if (seen)
        throw new XmeError(`cell ${record.cell.id} is in two shard folders: ${seen.dir} and ${dir}`, 'merge each shard once; remove the copy you do not want');
      cells.set(record.cell.id, { id: record.cell.id, dir, shardDir: shard.dir, shard: shard.record, record, run });
    }
  }

  // One image per image name: the same bytes booted in every cell.
  const images = new Map<string, FoundCell>();
  for (const cell of cells.values()) {
    const name = cell.run.image.name;
    const seen = images.get(name);
    if (!seen) images.set(name, cell);
    else if (imageFingerprint(seen.run) !== imageFingerprint(cell.run)) {
      throw new XmeError(
        `cells booted different builds of image '${name}': ${seen.dir} and ${cell.dir} have different sha256s (run.json image.files)`,
        `${HINT}; rebuild the shards with one image (xme image verify)`,
      );
    }
  }

  const expected = first.record.suiteCells;
  const unusable = [...cells.values()].filter((c) => c.record.status !== 'completed' || c.run.status !== 'completed');
  for (const cell of unusable) cells.delete(cell.id);
  const missing = expected.filter((c) => !cells.has(c.id)).map((c) => c.id);
  if (missing.length > 0 && !options.allowMissing) {
    const why = unusable.length
      ? ` (${list(
          unusable.map((c) => `${c.id} ${String(c.run.status)}`),
          10,
        )})`
      : '';
    throw new XmeError(
      `${missing.length} of ${expected.length} cells missing: ${list(missing)}${why}`,
      `rerun their shards (each cell lists its shard: xme suite list ${first.record.suite}${first.record.quick ? ' --quick' : ''} --shards ${first.record.shard.count}), or merge what is there with --allow-missing`,
    );
  }

  const out = path.resolve(options.out);
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0)
    throw new XmeError(`--out ${out} exists and is not empty`, 'give a new folder: merge never overwrites results');
  fs.mkdirSync(out, { recursive: true });

  const shardSummaries = shards.map((s) => ({
    dir: s.dir,
    shard: s.record.shard,
    status: s.record.status,
    host: s.record.host,
    harness: s.record.harness,
    ...(s.record.slurm ? { slurm: s.record.slurm } : {}),
    startedAt: s.record.startedAt,
    endedAt: s.record.endedAt,
  }));
  const order = new Map(expected.map((c, i) => [c.id, i]));
  const variantIds = [...new Set(expected.map((c) => c.variant))];
  const variantDirs: string[] = [];
  for (const variant of variantIds) {
    const mine = [...cells.values()].filter((c) => c.record.cell.variant === variant).sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    if (mine.length === 0) continue;
    const dir = path.join(out, variant);
    fs.mkdirSync(dir);
    writeVariant(
      dir,
      variant,
      mine,
      shardSummaries,
      missing.filter((id) => expected.find((c) => c.id === id)?.variant === variant),
    );
    variantDirs.push(dir);
  }
  writeJsonAtomically(path.join(out, 'suite.json'), {
    kind: MERGE_KIND,
    schema: 1,
    suite: first.record.suite,
    quick: first.record.quick,
    digest: first.record.digest,
    mergedAt: new Date().toISOString(),
    shards: shardSummaries,
    variants: variantDirs.map((d) => path.basename(d)),
    cells: expected.filter((c) => cells.has(c.id)).map((c) => ({ id: c.id, variant: c.variant, shard: c.shard, dir: cells.get(c.id)!.dir })),
    missing,
  });
  return { out, variantDirs, cells: cells.size, missing };
}

function writeVariant(dir: string, variant: string, cells: FoundCell[], shards: unknown[], missing: string[]): void {
  const base = cells[0]!.run;
  const scenarioBase = base.scenario;
  const repetitions: RepetitionMetrics[] = cells.flatMap((c) => c.record.repetitions);
  const memories = [...new Set(cells.map((c) => c.record.cell.memoryMiB))];
  const scenario: Scenario = {
    ...scenarioBase,
    memoryMiB: memories,
    repetitions: Math.max(...memories.map((m) => cells.filter((c) => c.record.cell.memoryMiB === m).length)),
  };

  // samples.csv: the cells' files, one header (every cell wrote the same columns: one xme version).
  const samples = fs.openSync(path.join(dir, 'samples.csv'), 'w');
  let header: string | undefined;
  try {
    for (const cell of cells) {
      const file = path.join(cell.dir, 'samples.csv');
      if (!fs.existsSync(file)) continue;
      const text = fs.readFileSync(file, 'utf8');
      const newline = text.indexOf('\n');
      const own = newline < 0 ? text : text.slice(0, newline);
      if (header === undefined) {
        header = own;
        fs.writeSync(samples, `${own}\n`);
      } else if (own !== header) throw new XmeError(`${file} has other columns than the first cell's samples.csv`, HINT);
      if (newline >= 0) fs.writeSync(samples, text.slice(newline + 1));
    }
  } finally {
    fs.closeSync(samples);
  }

  writeCsv(path.join(dir, 'summary.csv'), SUMMARY_SCHEMA, summaryRows(scenario, repetitions));
  if (scenario.baseline) writeCsv(path.join(dir, 'overhead.csv'), SLOWDOWN_SCHEMA, slowdownRows(scenario.name, scenario.baseline, repetitions));

  const times = (key: 'startedAt' | 'endedAt') =>
    cells
      .map((c) => c.run[key])
      .filter((t): t is string => typeof t === 'string')
      .sort();
  writeRunRecord(dir, {
    ...base,
    runId: variant,
    status: 'completed',
    owner: undefined,
    startedAt: times('startedAt')[0],
    endedAt: times('endedAt').at(-1),
    scenario,
    argv: undefined,
    repetitionsCompleted: repetitions.length,
    warnings: [
      ...(missing.length ? [`merged without ${missing.length} missing cells (--allow-missing): ${missing.join(', ')}`] : []),
      ...cells.flatMap((c) => c.run.warnings.map((w) => `${c.id}: ${w}`)),
    ],
    notes: [...new Set(cells.flatMap((c) => c.run.notes))],
    merged: {
      suite: cells[0]!.record.suite,
      digest: cells[0]!.record.digest,
      cells: cells.map((c) => ({ id: c.id, seed: c.record.cell.seed, shard: c.shard.shard.index, host: c.shard.host.hostname, dir: c.dir })),
      missingCells: missing,
      shards,
    },
    files: { samples: 'samples.csv', summary: 'summary.csv', logs: 'in each cell folder (merged.cells[].dir)/logs/' },
  });
}

/** A merged folder's results folders (one per variant), or undefined if `dir` is not a merged folder. */
export function mergedRunDirs(dir: string): string[] | undefined {
  const file = path.join(dir, 'suite.json');
  if (!fs.existsSync(file) || fs.existsSync(path.join(dir, 'run.json'))) return undefined;
  const json = readJson(file, 'a folder written by xme merge') as { kind?: unknown; variants?: unknown };
  if (json.kind !== MERGE_KIND || !Array.isArray(json.variants)) return undefined;
  return json.variants.filter((v): v is string => typeof v === 'string').map((v) => path.join(dir, v));
}
