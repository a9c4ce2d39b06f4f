/**
 * `npm run bench`: throughput targets live here, not in timed unit tests.
 *  1. Page hashing on one core, GB/s: native XXH3 (libxxhash through koffi), the WASM fallback, and SHA-1
 *     (node:crypto) — beside a byte-compare ceiling (Buffer.compare per page) measured in the same run.
 *  2. Scan cost on real guests (2 × 256 MiB, idle, nokaslr): content-based scan in ms per GiB of guest
 *     memory, the semantic scan, and their ratio — numbers from one run, since this machine is noisy.
 * Prints a table and writes bench/results.json (git-ignored).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Bench } from 'tinybench';
import { loadNativeHasher, loadWasmHasher, defaultHasher } from '../harness/hashing/page-hasher.ts';
import { QemuBackend } from '../harness/backends/qemu/qemu-backend.ts';
import { buildImage } from '../harness/images/build.ts';
import { kernelInfo } from '../harness/introspection/kernel-info.ts';
import { ContentStrategy } from '../strategies/content.ts';
import { SemanticStrategy } from '../strategies/semantic.ts';
import type { StrategyContext } from '../strategies/types.ts';

const PAGE = 4096;
const BUFFER_BYTES = 64 * 2 ** 20;
const pages = BUFFER_BYTES / PAGE;

function pageData(): Buffer {
  const buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  for (let i = 0; i < BUFFER_BYTES; i += 8) buffer.writeUInt32LE((i * 2654435761) >>> 0, i);
  return buffer;
}

function gbPerSecond(bench: Bench, name: string, bytes: number): number {
  const task = bench.tasks.find((t) => t.name === name)!;
  const result = task.result;
  if (result.state !== 'completed') throw new Error(`${name}: ${result.state}`);
  return bytes / (result.latency.mean / 1000) / 1e9;
}

async function hashing() {
  const data = pageData();
  const copy = Buffer.from(data);
  const out = new BigUint64Array(pages);
  const native = loadNativeHasher();
  const wasm = await loadWasmHasher();
  const bench = new Bench({ time: 2000, warmupTime: 300 });
  if (native) bench.add('xxh3 native', () => native.hashPages(data, out));
  bench.add('xxh64 wasm', () => wasm.hashPages(data, out));
  bench.add('sha1 node:crypto', () => {
    for (let i = 0; i < pages; i++) createHash('sha1').update(data.subarray(i * PAGE, (i + 1) * PAGE)).digest();
  });
  bench.add('compare ceiling', () => {
    for (let i = 0; i < pages; i++) data.compare(copy, i * PAGE, (i + 1) * PAGE, i * PAGE, (i + 1) * PAGE);
  });
  await bench.run();
  return Object.fromEntries(bench.tasks.map((t) => [t.name, gbPerSecond(bench, t.name, BUFFER_BYTES)]));
}

async function scans() {
  const image = (await buildImage('cloud')).image;
  const backend = await QemuBackend.create();
  try {
    const guests = await backend.provision(image, 2, { memoryMiB: 256, kaslr: false, workload: { name: 'idle' } });
    const context: StrategyContext = { guests, image, kernel: kernelInfo(image), hasher: await defaultHasher() };
    const content = new ContentStrategy({ zeroPages: true });
    const semantic = new SemanticStrategy({ rodata: false, route: 'memory' });
    await semantic.scan(context); // locate the kernels once, as a run does at its first tick
    await Promise.all(guests.map((g) => g.pause()));
    const bench = new Bench({ time: 3000, warmupTime: 500 });
    bench.add('content scan', async () => void (await content.scan(context)));
    bench.add('semantic scan', async () => void (await semantic.scan(context)));
    await bench.run();
    const ms = (name: string) => {
      const result = bench.tasks.find((t) => t.name === name)!.result;
      if (result.state !== 'completed') throw new Error(`${name}: ${result.state}`);
      return result.latency.mean;
    };
    const gib = (guests.length * 256) / 1024;
    return {
      guestGiB: gib,
      contentScanMs: ms('content scan'),
      contentScanMsPerGiB: ms('content scan') / gib,
      semanticScanMs: ms('semantic scan'),
      contentOverSemantic: ms('content scan') / ms('semantic scan'),
    };
  } finally {
    await backend.close();
  }
}

const hashingResults = await hashing();
process.stdout.write('page hashing, one core (GB/s):\n');
for (const [name, rate] of Object.entries(hashingResults)) process.stdout.write(`  ${name.padEnd(18)} ${rate.toFixed(2)}\n`);
const scanResults = await scans();
process.stdout.write(
  `scan on real guests (2 × 256 MiB, idle):\n  content  ${scanResults.contentScanMs.toFixed(1)} ms per scan = ${scanResults.contentScanMsPerGiB.toFixed(1)} ms/GiB\n` +
    `  semantic ${scanResults.semanticScanMs.toFixed(2)} ms per scan\n  content / semantic = ${scanResults.contentOverSemantic.toFixed(1)}×\n`,
);
const file = path.join(import.meta.dirname, 'results.json');
fs.writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), hashingGBps: hashingResults, scan: scanResults }, null, 2)}\n`);
process.stdout.write(`written to ${file}\n`);
