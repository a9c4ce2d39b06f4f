/**
 * Runs one shard of a suite: its cells one after the other, each as an ordinary run (runner.ts) into a folder
 * named by the cell id inside the shard's folder (shard-folder.ts). A cell that fails is recorded and the
 * next one runs; the shard fails at the end if any did. Running a shard again into the same folder keeps the
 * cells that completed with the same xme commit (a requeued Slurm task does not redo them) and redoes the others.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BackendFactory } from '../backends/registry.ts';
import type { AcceleratorRequest } from '../backends/qemu/accelerator.ts';
import { errorMessage, XmeError } from '../util/errors.ts';
import { onCleanup, terminationRequested } from '../util/cleanup.ts';
import { harnessInfo, hostInfo, type HarnessInfo } from '../results/provenance.ts';
import { prepareImage, type PreparedImage, type RunOptions, type RunOutcome } from '../experiment/runner.ts';
import type { ResultWriter } from '../results/result-writer.ts';
import { cellScenario, type ExpandedSuite } from './cells.ts';
import { cellsOfShard, shardOf, type Shard } from './shard.ts';
import { CellWriter, shardFolderName, writeShardRecord, type CellRecord, type ShardCellResult, type ShardRecord } from './shard-folder.ts';

/** Runs one cell as an ordinary run: the command line's composition (harness/cli/run-outputs.ts runWithOutputs). */
export type CellRunner = (options: Omit<RunOptions, 'writers' | 'folderOutputs' | 'warnings'> & { writers: ResultWriter[] }) => Promise<RunOutcome>;

export interface ShardRunOptions {
  suite: ExpandedSuite;
  /** How each cell runs (the same composition as `xme run`, so a cell folder is what `xme run` writes). */
  runCell: CellRunner;
  shard: Shard;
  /** Parent of the shard's folder. */
  resultsRoot: string;
  accelerator?: AcceleratorRequest;
  onProgress?: (line: string) => void;
  argv?: string[];
  /** Test seams, passed to every cell's run (runner.ts RunOptions). */
  backendFactory?: BackendFactory;
  image?: PreparedImage;
  stopRequested?: () => boolean;
  /** Writers added to every cell's run (e.g. the console table). */
  writers?: () => ResultWriter[];
}

export interface ShardOutcome {
  dir: string;
  record: ShardRecord;
}

function slurmEnv(): Record<string, string> | undefined {
  const keys = ['SLURM_JOB_ID', 'SLURM_ARRAY_JOB_ID', 'SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_COUNT', 'SLURMD_NODENAME'];
  const found = Object.fromEntries(keys.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]!]));
  return Object.keys(found).length ? found : undefined;
}

/**
 * A cell folder left by an earlier attempt that completed this very cell of this very suite, with this very
 * xme (a cell kept from another commit would make merge refuse the whole shard).
 */
function completedBefore(dir: string, digest: string, harness: HarnessInfo): boolean {
  try {
    const cell = JSON.parse(fs.readFileSync(path.join(dir, 'cell.json'), 'utf8')) as Partial<CellRecord>;
    const run = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as { harness?: Partial<HarnessInfo> };
    return cell.digest === digest && cell.status === 'completed' && run.harness?.gitCommit === harness.gitCommit && run.harness?.version === harness.version;
  } catch {
    return false;
  }
}

export async function runShard(options: ShardRunOptions): Promise<ShardOutcome> {
  const { suite, shard } = options;
  const say = options.onProgress ?? (() => undefined);
  const stopRequested = options.stopRequested ?? terminationRequested;
  const dir = path.join(options.resultsRoot, shardFolderName(suite.suite, suite.quick, shard.index, shard.count));
  fs.mkdirSync(dir, { recursive: true });
  const mine = cellsOfShard(suite.cells, shard);
  const record: ShardRecord = {
    kind: 'xme-suite-shard',
    schema: 1,
    suite: suite.suite,
    quick: suite.quick,
    digest: suite.digest,
    shard,
    status: 'running',
    suiteCells: suite.cells.map((c) => ({ id: c.id, variant: c.variant, shard: shardOf(c, shard.count) })),
    host: hostInfo(),
    harness: harnessInfo(),
    ...(slurmEnv() ? { slurm: slurmEnv() } : {}),
    startedAt: new Date().toISOString(),
    cells: [],
  };
  writeShardRecord(dir, record);
  // On Ctrl-C or a signal (a Slurm time limit sends SIGTERM), the shard record says so instead of 'running'.
  const seal = () => {
    if (record.status !== 'running') return;
    record.status = 'interrupted';
    record.endedAt = new Date().toISOString();
    writeShardRecord(dir, record);
  };
  const unregister = onCleanup({ name: `shard record ${dir}`, run: async () => seal(), runSync: seal });
  say(`suite ${suite.suite}${suite.quick ? ' (quick)' : ''}: shard ${shard.index}/${shard.count}, ${mine.length} of ${suite.cells.length} cells → ${dir}`);

  const images = new Map<string, PreparedImage>();
  try {
    for (const cell of mine) {
      if (stopRequested()) break;
      const variant = suite.variants.find((v) => v.id === cell.variant)!;
      const cellDir = path.join(dir, cell.id);
      const started = Date.now();
      const result = (status: ShardCellResult['status'], error?: string): ShardCellResult => ({
        id: cell.id,
        status,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        ...(error ? { error } : {}),
      });
      if (completedBefore(cellDir, suite.digest, record.harness)) {
        say(`cell ${cell.id}: completed by an earlier attempt, kept`);
        record.cells.push(result('skipped (completed before)'));
        writeShardRecord(dir, record);
        continue;
      }
      fs.rmSync(cellDir, { recursive: true, force: true });
      const scenario = cellScenario(variant, cell);
      try {
        // One image check per image and System.map, not per cell.
        const imageKey = `${scenario.image}\u0000${scenario.systemMap ?? ''}\u0000${scenario.guestImages?.join(',') ?? ''}`;
        let image = options.image ?? images.get(imageKey);
        if (!image) {
          image = await prepareImage(scenario, say);
          images.set(imageKey, image);
        }
        say(`cell ${cell.id} (${mine.indexOf(cell) + 1}/${mine.length}, seed ${cell.seed})`);
        const outcome = await options.runCell({
          scenario,
          accelerator: options.accelerator,
          resultsRoot: dir,
          runId: cell.id,
          firstRepetition: cell.repetition,
          argv: options.argv,
          onProgress: (line) => say(`  ${line}`),
          backendFactory: options.backendFactory,
          image,
          stopRequested,
          writers: [new CellWriter({ suite: suite.suite, digest: suite.digest, cell }), ...(options.writers?.() ?? [])],
        });
        record.cells.push(result(outcome.status === 'completed' ? 'completed' : outcome.status === 'interrupted' ? 'interrupted' : 'failed'));
      } catch (error) {
        say(`cell ${cell.id} failed: ${errorMessage(error)}`);
        record.cells.push(result('failed', errorMessage(error)));
      }
      writeShardRecord(dir, record);
    }
  } finally {
    unregister();
  }
  const failed = record.cells.filter((c) => c.status === 'failed');
  const done = record.cells.length === mine.length && record.cells.every((c) => c.status === 'completed' || c.status.startsWith('skipped'));
  record.status = failed.length ? 'failed' : done ? 'completed' : 'interrupted';
  record.endedAt = new Date().toISOString();
  writeShardRecord(dir, record);
  return { dir, record };
}

/** For the CLI: a shard that did not complete every cell is an error naming them. */
export function requireCompleted(outcome: ShardOutcome): void {
  const bad = outcome.record.cells.filter((c) => c.status !== 'completed' && !c.status.startsWith('skipped'));
  if (outcome.record.status === 'completed') return;
  throw new XmeError(
    `shard ${outcome.record.shard.index}/${outcome.record.shard.count} ${outcome.record.status}: ${bad.map((c) => `${c.id} ${c.status}${c.error ? ` (${c.error})` : ''}`).join('; ') || 'stopped before all its cells ran'}`,
    `run the same command again to redo only those cells (results in ${outcome.dir})`,
  );
}
