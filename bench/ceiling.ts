/**
 * The C ceiling: bench/native/ceiling.c, built here (gcc, libxxhash) and run in the same bench run, so that
 * the content pass is compared with what one core does on this machine now, not with a figure from another day.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cacheDir } from '../harness/util/paths.ts';

export interface Ceiling {
  xxh3Gbps: number;
  /** Buffer and compare modes only (0 on guest files). */
  memcmpGbps: number;
  bytes: number;
}

function build(): string {
  const source = path.join(import.meta.dirname, 'native', 'ceiling.c');
  const digest = createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 16);
  const target = path.join(cacheDir(), 'native', `ceiling-${digest}`);
  if (!fs.existsSync(target)) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    execFileSync('gcc', ['-O2', '-o', `${target}.${process.pid}`, source, '-l:libxxhash.so.0']);
    fs.renameSync(`${target}.${process.pid}`, target);
  }
  return target;
}

/**
 * How much of a second core the host gives now: XXH3 over a heap buffer in wall time, one process alone, then
 * two at once (each its own buffer). 2× = a free second core; ≈ 1× = the other core is taken, and no pass on 2
 * threads can beat one thread's wall at that moment. With the kernel's autogroup scheduling
 * (/proc/sys/kernel/sched_autogroup_enabled) a session's threads share one group's fair share of the CPU, so
 * while other sessions keep both cores busy (other engineers' guests), a second thread gets no more CPU than
 * the first: these two processes are in the bench's session and see the same share its threads do.
 */
export async function parallelCeiling(mib = 64, passes = 20, rounds = 3): Promise<{ oneWallGbps: number; twoWallGbps: number }> {
  const once = () =>
    new Promise<number>((resolve, reject) =>
      execFile(build(), ['buffer', String(mib), String(passes)], { encoding: 'utf8' }, (error, out) =>
        error ? reject(error) : resolve((JSON.parse(out) as { xxh3_wall_gbps: number }).xxh3_wall_gbps),
      ),
    );
  // Rounds alternate, one alone then two together; the median of each (a shared host disturbs some rounds).
  const one: number[] = [];
  const two: number[] = [];
  for (let round = 0; round < rounds; round++) {
    one.push(await once());
    const [a, b] = await Promise.all([once(), once()]);
    two.push(a + b);
  }
  const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1]!;
  return { oneWallGbps: median(one), twoWallGbps: median(two) };
}

function run(args: string[]): Ceiling {
  const out = execFileSync(build(), args, { encoding: 'utf8' });
  const parsed = JSON.parse(out) as { xxh3_gbps: number; memcmp_gbps: number; bytes: number };
  return { xxh3Gbps: parsed.xxh3_gbps, memcmpGbps: parsed.memcmp_gbps, bytes: parsed.bytes };
}

/** XXH3 and memcmp per 4 KiB page of a 64 MiB heap buffer, best of `passes`. */
export function bufferCeiling(passes = 10): Ceiling {
  return run(['buffer', '64', String(passes)]);
}

/**
 * memcmp of page k of each guest's range with the first guest's page k (stopping at the first that differs),
 * over the same ranges of the same guest RAM files as the semantic strategy compares; best of `passes`.
 */
export function rangeCompareCeiling(ranges: { file: string; firstPage: number }[], pages: number, passes = 20): Ceiling {
  return run(['compare', String(passes), String(pages), ...ranges.flatMap((r) => [r.file, String(r.firstPage)])]);
}

/** XXH3 per page over the resident pages of these guest RAM files (mmap + mincore), best of `passes`. */
export function guestFilesCeiling(files: string[], passes = 10): Ceiling {
  return run(['files', String(passes), ...files]);
}
