/**
 * End to end: real Debian guests (the debian-system image, from the cache or built in beforeAll) under QEMU,
 * two of them, each on its own overlay of the one base disk, running nginx with wrk as their workload. The
 * guest agent is ready, the workload counts requests, and a known answer for the page cache: both guests read
 * one file of the base disk that nothing else reads (libasan, ~2,000 pages), so each holds its pages in its page
 * cache, byte for byte the same; content-based sharing must find every one of those pages in both guests and
 * share them across the guests. Teardown leaves no QEMU, overlay or socket behind. Skipped, visibly, where a
 * system image cannot be built (not root, no mmdebstrap).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { QemuGuest } from '../backends/qemu/qemu-guest.ts';
import type { SystemImage } from '../images/manifest.ts';
import { buildSystemImage, systemBuildBlocker } from '../images/system-build.ts';
import { defaultHasher } from '../hashing/page-hasher.ts';
import { kernelInfo } from '../introspection/kernel-info.ts';
import { AccountingLedger } from '../sharing/ledger.ts';
import { ContentStrategy } from '../../strategies/content.ts';
import { qemuPids } from '../testing/e2e.ts';
import { PAGE_SIZE } from '../vocabulary.ts';

/** In the base image, read by no service and by nginx/wrk not at all: its pages enter the page cache only when the test reads it. */
const KNOWN_FILE = '/usr/lib/x86_64-linux-gnu/libasan.so.8.0.0';

const blocker = systemBuildBlocker();
const because = blocker ? ` — SKIPPED: ${blocker}` : '';
if (blocker) process.stderr.write(`[e2e] real guest tests skipped: ${blocker}\n`);

let image: SystemImage;
let backend: QemuBackend;
let guests: QemuGuest[];
let runtimeDir: string;
let provisionMs: number;

beforeAll(async () => {
  if (blocker) return;
  image = (await buildSystemImage('debian-system', { onStep: (message) => process.stderr.write(`[e2e] ${message}\n`) })).image;
  backend = await QemuBackend.create({ accelerator: 'auto' });
  const started = Date.now();
  guests = (await backend.provision(image, 2, {
    memoryMiB: 512,
    kaslr: true,
    workload: { name: 'nginx', params: { mib: 2, interval_ms: 3000 } },
    onGuestBooted: (guest, ms) => process.stderr.write(`[e2e] ${guest.id}: agent ready after ${(ms / 1000).toFixed(1)} s\n`),
  })) as QemuGuest[];
  provisionMs = Date.now() - started;
  runtimeDir = backend.runtimeDir!;
}, 20 * 60_000);

afterAll(async () => {
  await backend?.close();
});

/** sha256 of a page, hex: the file's pages and the guests' pages compared by content. */
const digest = (page: Buffer) => crypto.createHash('sha256').update(page).digest('hex');

describe(`real Debian guests (debian-system, QEMU)${because}`, () => {
  it.skipIf(!!blocker)('boot from their own overlays with the guest agent ready, and run nginx under wrk', async () => {
    expect(guests).toHaveLength(2);
    for (const guest of guests) {
      expect(guest.image.kind).toBe('system');
      expect(guest.bootMs).toBeGreaterThan(0);
      expect(guest.files.disk).toMatch(new RegExp(`^${runtimeDir}/g\\d\\.qcow2$`));
      expect(fs.existsSync(guest.files.agentSocket!)).toBe(true);
      expect(guest.argv.join(' ')).toContain(`file=${guest.files.disk},format=qcow2,if=virtio,cache=unsafe`);
      expect(guest.argv.join(' ')).toContain(' -nic none ');
      await guest.agent!.ping();
      const { stdout } = await guest.agent!.exec('/bin/sh', ['-c', 'uname -r; ls /sys/class/net; systemctl is-active nginx']);
      expect(stdout.split('\n')).toEqual([image.manifest.kernelRelease, 'lo', 'active', '']);
      // provision returned once each guest counted requests
      const progress = guest.console!.progress();
      expect(progress.at(-1)!.ops).toBeGreaterThan(0);
      expect(guest.console!.lines('XME-ERROR')).toEqual([]);
    }
    process.stderr.write(`[e2e] 2 real guests booted and counting requests after ${(provisionMs / 1000).toFixed(1)} s\n`);
  });

  it.skipIf(!!blocker)(
    'a file both guests read from the shared disk: content-based sharing shares every one of its pages across them',
    async () => {
      // The file's bytes, through guest 0's agent (which puts them in its page cache); guest 1 reads it with cat.
      const file = await guests[0]!.agent!.readFile(KNOWN_FILE);
      expect(file.length).toBeGreaterThan(4 << 20);
      const read = await guests[1]!.agent!.exec('/bin/sh', ['-c', `cat ${KNOWN_FILE} | wc -c`]);
      expect(Number(read.stdout.trim())).toBe(file.length);

      // Its distinct non-zero pages (the last one zero-padded, as the page cache holds it): each must be shared.
      const padded = Buffer.alloc(Math.ceil(file.length / PAGE_SIZE) * PAGE_SIZE);
      file.copy(padded);
      const zero = digest(Buffer.alloc(PAGE_SIZE));
      const filePages = new Set<string>();
      for (let offset = 0; offset < padded.length; offset += PAGE_SIZE) filePages.add(digest(padded.subarray(offset, offset + PAGE_SIZE)));
      filePages.delete(zero);
      const n = filePages.size;
      expect(n).toBeGreaterThan(1000);

      const hasher = await defaultHasher();
      const ledger = new AccountingLedger('content', guests, hasher);
      const strategy = new ContentStrategy({ zeroPages: true });
      await Promise.all(guests.map((guest) => guest.pause()));
      let sharedFilePages: number;
      let found: number[];
      let stats: ReturnType<AccountingLedger['stats']>;
      try {
        const residency = guests.map((guest) => guest.hostResidency.residentPages());
        ledger.setHostResidency(residency);
        ledger.apply((await strategy.scan({ guests, image, kernel: kernelInfo(image), hasher, residency })).groups);
        stats = ledger.stats();
        // Where each of the file's pages is in each guest, and whether the ledger shares it there.
        const where = guests.map((guest, g) => {
          const pages = new Map<string, number[]>();
          for (let gfn = 0; gfn < guest.memoryPages; gfn++) {
            if (!residency[g]![gfn]) continue;
            const hash = digest(guest.pages(gfn, 1));
            if (filePages.has(hash)) pages.set(hash, [...(pages.get(hash) ?? []), gfn]);
          }
          return pages;
        });
        found = where.map((pages) => pages.size);
        sharedFilePages = [...filePages].filter((hash) =>
          where.every((pages, guest) => (pages.get(hash) ?? []).some((gfn) => ledger.isShared({ guest, gfn }))),
        ).length;
      } finally {
        await Promise.all(guests.map((guest) => guest.resume()));
      }
      process.stderr.write(
        `[e2e] ${KNOWN_FILE}: ${n} distinct non-zero pages; found in the guests: ${found.join(', ')}; shared across both: ${sharedFilePages}; ` +
          `frames saved ${stats.framesSaved} (zero ${stats.savedWhere!.zero}, within ${stats.savedWhere!.withinGuest}, across ${stats.savedWhere!.acrossGuests})\n`,
      );
      // Every page of the file is in both page caches, and shared across the guests (a few pages of tolerance).
      const tolerance = 8;
      for (const count of found) expect(count).toBeGreaterThanOrEqual(n - tolerance);
      expect(sharedFilePages).toBeGreaterThanOrEqual(n - tolerance);
      expect(stats.savedWhere!.acrossGuests).toBeGreaterThanOrEqual(n - tolerance);
    },
    5 * 60_000,
  );

  it.skipIf(!!blocker)(
    'teardown leaves no QEMU, overlay or socket behind',
    async () => {
      const pids = guests.map((guest) => guest.pid);
      const files = guests.flatMap((guest) => [guest.files.disk!, guest.files.agentSocket!, guest.files.qmpSocket, guest.files.workloadLog!]);
      for (const file of files) expect(fs.existsSync(file), file).toBe(true);
      await backend.close();
      expect(qemuPids(runtimeDir)).toEqual([]);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      expect(fs.existsSync(runtimeDir)).toBe(false);
      for (const file of files) expect(fs.existsSync(file), file).toBe(false);
    },
    60_000,
  );
});
