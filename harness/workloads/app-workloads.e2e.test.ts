/**
 * End to end: the application workloads (httpd, gzip) on real guests (QEMU, 256 MiB, one at a time). Each must
 * set itself up, then report progress on schedule with ops that strictly grow and no XME-ERROR; a deliberately
 * wrong request (fail_after) must stop the httpd workload loudly: an XME-ERROR naming the request and its 404,
 * init.sh's exit status line, and no more progress.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { QemuGuest } from '../backends/qemu/qemu-guest.ts';
import type { WorkloadProgress } from '../vocabulary.ts';
import type { WorkloadSpec } from '../vocabulary.ts';
import type { GuestImage } from '../images/manifest.ts';
import { defaultImage } from '../testing/e2e.ts';

const INTERVAL_MS = 1000;
const FAIL_AFTER = 5;

let backend: QemuBackend;
let image: GuestImage;

beforeAll(async () => {
  image = await defaultImage();
  backend = await QemuBackend.create({ accelerator: 'auto' });
});
afterAll(async () => {
  await backend?.close();
});

/**
 * Boot one guest running `workload`, check it, stop it. One guest at a time, each stopped as soon as it is
 * checked: an unpaced workload takes all the CPU it gets, and other test files boot guests beside this one.
 */
async function withGuest(workload: WorkloadSpec, check: (guest: QemuGuest) => Promise<void>): Promise<void> {
  const [guest] = (await backend.provision(image, 1, { memoryMiB: 256, kaslr: false, workload })) as QemuGuest[];
  try {
    await check(guest!);
  } finally {
    await guest!.stop();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hint(guest: QemuGuest): string {
  return `guest ${guest.id}, console log ${guest.files.serialLog}; last lines:\n${guest.consoleTail(8).join('\n')}`;
}

/**
 * The progress lines from the first one with ops > 0 (the workload's loop is running; before, it was setting up)
 * until `count` of them are there. Fails at once on an XME-ERROR or a dead guest.
 */
async function runningProgress(guest: QemuGuest, count: number, timeoutMs: number): Promise<WorkloadProgress[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const errors = guest.console.lines('XME-ERROR');
    if (errors.length) throw new Error(`${errors.join('\n')}\n${hint(guest)}`);
    if (!guest.alive()) throw new Error(`guest ended\n${hint(guest)}`);
    const all = guest.console.progress();
    const first = all.findIndex((line) => line.ops > 0);
    if (first >= 0 && all.length - first >= count) return all.slice(first, first + count);
    if (Date.now() > deadline) throw new Error(`fewer than ${count} running progress lines within ${timeoutMs / 1000} s (${all.length} lines)\n${hint(guest)}`);
    await sleep(200);
  }
}

function expectGrowingOnSchedule(lines: WorkloadProgress[]): void {
  for (let i = 1; i < lines.length; i++) {
    expect(lines[i]!.ops, `ops at line ${i}`).toBeGreaterThan(lines[i - 1]!.ops);
    // On schedule, even while a request or a gzip is under way: one line per interval of the guest clock (with
    // slack for a guest the host starves for a while; a late line makes the next one come sooner).
    expect(lines[i]!.tMs - lines[i - 1]!.tMs).toBeGreaterThan(0);
    expect(lines[i]!.tMs - lines[i - 1]!.tMs).toBeLessThanOrEqual(3 * INTERVAL_MS);
  }
}

/** Ops per second of the guest clock between the first and the last line. */
function rate(lines: WorkloadProgress[]): number {
  return (lines.at(-1)!.ops - lines[0]!.ops) / ((lines.at(-1)!.tMs - lines[0]!.tMs) / 1000);
}

describe('application workloads on real guests', () => {
  it(
    'httpd: serves its file set and the client completes checked requests at a plausible rate',
    () =>
      withGuest({ name: 'httpd', params: { interval_ms: INTERVAL_MS } }, async (httpd) => {
        const lines = await runningProgress(httpd, 4, 90_000);
        expectGrowingOnSchedule(lines);
        const perSecond = rate(lines);
        expect(perSecond).toBeGreaterThan(0);
        // Each request forks a server process and moves 4–64 KiB: thousands per second would mean nothing was served.
        expect(perSecond).toBeLessThan(5000);
        const serving = httpd.console.lines('XME-HTTPD serving');
        expect(serving).toHaveLength(1);
        // mib=4 by default: files of 4–64 KiB adding up to 4 MiB (the last one may round it up by < 4 KiB).
        const match = /files=(\d+) bytes=(\d+) at http:\/\/127\.0\.0\.1:8080\//.exec(serving[0]!);
        expect(match, serving[0]).not.toBeNull();
        const [files, bytes] = [Number(match![1]), Number(match![2])];
        expect(bytes).toBeGreaterThanOrEqual(4 << 20);
        expect(bytes).toBeLessThan((4 << 20) + 4096);
        expect(files).toBeGreaterThanOrEqual(Math.ceil((4 << 20) / (64 << 10)));
        expect(files).toBeLessThanOrEqual((4 << 20) / (4 << 10) + 1);
        expect(httpd.console.lines('XME-ERROR')).toEqual([]);
        console.info(`[e2e] httpd: ${perSecond.toFixed(1)} requests/s (${files} files)`);
      }),
    180_000,
  );

  it(
    'gzip: compresses its files, counted in 4 KiB blocks, and the data is compressible but not trivial',
    () =>
      withGuest({ name: 'gzip', params: { interval_ms: INTERVAL_MS } }, async (gzip) => {
        const lines = await runningProgress(gzip, 4, 120_000);
        expectGrowingOnSchedule(lines);
        // Ops come per file: 256 KiB = 64 blocks.
        for (const line of lines) expect(line.ops % 64).toBe(0);
        expect(rate(lines)).toBeGreaterThan(0);
        // After one pass over the 8 MiB (32 files), it tells how much gzip's output was.
        const deadline = Date.now() + 120_000;
        const done = () => gzip.console.lines('XME-GZIP first pass').length > 0 || gzip.console.lines('XME-ERROR').length > 0;
        while (!done() && Date.now() < deadline) await sleep(500);
        const pass = gzip.console.lines('XME-GZIP first pass');
        expect(pass, hint(gzip)).toHaveLength(1);
        const match = /files=(\d+) in=(\d+) out=(\d+)/.exec(pass[0]!);
        expect(match, pass[0]).not.toBeNull();
        const [files, input, output] = [Number(match![1]), Number(match![2]), Number(match![3])];
        expect(files).toBe(32);
        expect(input).toBe(8 << 20);
        expect(output / input).toBeGreaterThan(0.2);
        expect(output / input).toBeLessThan(0.6);
        expect(gzip.console.lines('XME-ERROR')).toEqual([]);
        console.info(`[e2e] gzip: ${rate(lines).toFixed(1)} blocks/s, ratio ${(output / input).toFixed(3)}`);
      }),
    320_000,
  );

  it(
    'httpd with fail_after: the wrong request stops the workload loudly',
    () =>
      withGuest({ name: 'httpd', params: { interval_ms: INTERVAL_MS, fail_after: FAIL_AFTER } }, async (failing) => {
        const deadline = Date.now() + 90_000;
        while (failing.console.lines('XME-ERROR').length < 2 && Date.now() < deadline) await sleep(200);
        const errors = failing.console.lines('XME-ERROR');
        expect(errors, hint(failing)).toEqual([
          `XME-ERROR httpd: GET /xme-missing.html after ${FAIL_AFTER} requests: status 404 (HTTP/1.1 404 Not Found)`,
          'XME-ERROR workload httpd exited with status 1',
        ]);
        // The workload is gone: no more progress lines (init.sh sleeps), though the guest still runs.
        const seen = failing.console.progress().length;
        await sleep(2.5 * INTERVAL_MS);
        expect(failing.console.progress().length).toBe(seen);
        expect(failing.alive()).toBe(true);
      }),
    180_000,
  );
});
