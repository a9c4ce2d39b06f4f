/**
 * Which cells a shard runs. Shard i of N (0-based, as Slurm array indices and CI matrix indices are) takes
 * the cells whose index mod N is i: every cell is in exactly one shard, the partition depends only on the
 * suite (not on the host or the time), and consecutive cells of one entry — often of similar length — are
 * spread over the shards.
 */
import { XmeError } from '../util/errors.ts';
import type { Cell } from './cells.ts';

export interface Shard {
  index: number;
  count: number;
}

export function shardOf(cell: Pick<Cell, 'index'>, count: number): number {
  return cell.index % count;
}

export function cellsOfShard<C extends Pick<Cell, 'index'>>(cells: readonly C[], shard: Shard): C[] {
  return cells.filter((cell) => shardOf(cell, shard.count) === shard.index);
}

const SHARD_HINT = '--shard i/N with 0 ≤ i < N (e.g. --shard 0/2 and --shard 1/2), or --shard slurm inside an sbatch --array job';

/** Parses `--shard i/N`, or `slurm` from the environment of a Slurm array task. */
export function parseShard(text: string, env: NodeJS.ProcessEnv = process.env): Shard {
  if (text === 'slurm') return slurmShard(env);
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new XmeError(`--shard ${text}: not of the form i/N`, SHARD_HINT);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count) throw new XmeError(`--shard ${text}: the index must be from 0 to N − 1 and N at least 1`, SHARD_HINT);
  return { index, count };
}

/**
 * A Slurm array task's shard: SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN (so --array=1-4 works as
 * --array=0-3) of SLURM_ARRAY_TASK_COUNT. An array with gaps or a step (--array=0,2 or 0-6:2) is refused:
 * its tasks would not cover every shard.
 */
export function slurmShard(env: NodeJS.ProcessEnv): Shard {
  const id = env.SLURM_ARRAY_TASK_ID;
  const count = env.SLURM_ARRAY_TASK_COUNT;
  if (id === undefined || count === undefined) {
    throw new XmeError(
      '--shard slurm: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set: this is not a task of a Slurm job array',
      'submit it with sbatch --array=0-<N−1> (scripts/slurm/suite.sbatch), or give --shard i/N',
    );
  }
  const min = Number(env.SLURM_ARRAY_TASK_MIN ?? '0');
  const max = env.SLURM_ARRAY_TASK_MAX === undefined ? undefined : Number(env.SLURM_ARRAY_TASK_MAX);
  const [index, total] = [Number(id) - min, Number(count)];
  if (![index, total, min].every(Number.isInteger) || total < 1 || index < 0 || index >= total || (max !== undefined && max - min + 1 !== total)) {
    throw new XmeError(
      `--shard slurm: array task ${id} (min ${env.SLURM_ARRAY_TASK_MIN ?? 'unset'}, max ${env.SLURM_ARRAY_TASK_MAX ?? 'unset'}, count ${count}) is not one of a contiguous array`,
      'submit the suite with a contiguous range, e.g. sbatch --array=0-3',
    );
  }
  return { index, count: total };
}
