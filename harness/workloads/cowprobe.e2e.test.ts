/**
 * End to end: the cowprobe workload on two real guests (QEMU, nokaslr). Its frame numbers point at its pages:
 * the bytes there are the known content, equal between guests page by page and different between pages; after
 * "written" exactly the first `writes` pages changed (in the one word the probe writes), the rest — including
 * the `same` pages, written with their own bytes — did not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { QemuGuest } from '../backends/qemu/qemu-guest.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import { defaultImage } from '../testing/e2e.ts';
import { cowprobePageBytes, waitForCowprobe, type CowprobeState } from './cowprobe.ts';

const PAGES = 64;
const WRITES = 8;
const SAME = 4;
const DELAY_MS = 5000;
const GAP_MS = 100;

let backend: QemuBackend;
let guests: QemuGuest[];
const probes: CowprobeState[] = [];
/** Copies of each guest's probe pages at "ready", in page order. */
const before: Buffer[][] = [];

beforeAll(async () => {
  const image = await defaultImage();
  backend = await QemuBackend.create({ accelerator: 'auto' });
  guests = (await backend.provision(image, 2, {
    memoryMiB: 256,
    kaslr: false,
    workload: { name: 'cowprobe', params: { pages: PAGES, writes: WRITES, same: SAME, delay_ms: DELAY_MS, gap_ms: GAP_MS, interval_ms: 500 } },
  })) as QemuGuest[];
});
afterAll(async () => {
  await backend?.close();
});

/** Each guest's probe pages (copies), read while every guest is paused. */
async function readProbePages(): Promise<Buffer[][]> {
  await Promise.all(guests.map((guest) => guest.pause()));
  try {
    return guests.map((guest, g) => probes[g]!.gfns.map((gfn) => Buffer.from(guest.pages(gfn, 1))));
  } finally {
    await Promise.all(guests.map((guest) => guest.resume()));
  }
}

describe('cowprobe workload on real guests', () => {
  it('reports its pages distinct frame numbers inside guest memory, holding the known bytes', async () => {
    for (const guest of guests) probes.push(await waitForCowprobe(guest, 'ready', 30_000));
    before.push(...(await readProbePages()));
    for (const [g, probe] of probes.entries()) {
      expect(probe).toMatchObject({ ready: true, written: false, pages: PAGES, writes: WRITES, same: SAME, notes: [] });
      expect(probe.gfns).toHaveLength(PAGES);
      expect(new Set(probe.gfns).size).toBe(PAGES);
      for (const gfn of probe.gfns) {
        expect(gfn).toBeGreaterThan(0);
        expect(gfn).toBeLessThan(guests[g]!.memoryPages);
      }
    }
    // Every page holds its known content (so no write happened yet): equal between guests, distinct between pages.
    for (let i = 0; i < PAGES; i++) {
      const expected = cowprobePageBytes(i);
      for (let g = 0; g < guests.length; g++) {
        expect(before[g]![i]!.equals(expected), `guest g${g} page ${i} at gfn 0x${probes[g]!.gfns[i]!.toString(16)}`).toBe(true);
      }
    }
    expect(new Set(before[0]!.map((page) => page.toString('hex'))).size).toBe(PAGES);
  }, 60_000);

  it('after "written", exactly the first `writes` pages changed, in one word, identically in both guests', async () => {
    const deadline = DELAY_MS + (WRITES + SAME) * GAP_MS + 20_000;
    for (const guest of guests) await waitForCowprobe(guest, 'written', deadline);
    const after = await readProbePages();
    for (let g = 0; g < guests.length; g++) {
      const changed = after[g]!.flatMap((page, i) => (page.equals(before[g]![i]!) ? [] : [i]));
      expect(changed, `guest g${g}: pages that changed`).toEqual(Array.from({ length: WRITES }, (_, i) => i));
      for (let i = 0; i < PAGES; i++) {
        expect(after[g]![i]!.equals(cowprobePageBytes(i, i < WRITES)), `guest g${g} page ${i}`).toBe(true);
      }
      expect(after[g]![0]!.length).toBe(PAGE_SIZE);
    }
    // The workload counts every write (changing and same-bytes) as one op.
    for (const guest of guests) {
      const until = Date.now() + 5000;
      while ((guest.console.progress().at(-1)?.ops ?? 0) < WRITES + SAME && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(guest.console.progress().at(-1)?.ops).toBe(WRITES + SAME);
      expect(guest.console.lines('XME-ERROR')).toEqual([]);
    }
  }, 60_000);
});
