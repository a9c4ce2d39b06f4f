/**
 * The CoW definition against a known answer, on real QEMU guests: each guest's cowprobe fills K pages with
 * bytes identical across guests, waits until the harness rings its doorbell (after sharing), then writes
 * exactly N of them once (both guests the same pages, a gap apart, so writes fall into different ticks) and M more with the bytes
 * already there. The content strategy scores the whole memory every tick (guests paused, as the runner does);
 * the ledger must count exactly N faults per guest on the probe pages — the survivor of a pair written one
 * tick later included — and none for the M same-bytes writes (content-reread cannot see them: the lower bound
 * the CSV names). The Xen test (xen-backend.xen.test.ts) checks that the hypervisor counts N + M.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { Guest } from '../backends/types.ts';
import { defaultImage } from '../testing/e2e.ts';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { kernelInfo } from '../introspection/kernel-info.ts';
import type { GuestImage } from '../images/manifest.ts';
import { ContentStrategy } from '../../strategies/content.ts';
import { ringCowprobe, waitForCowprobe, type CowprobeState } from '../workloads/cowprobe.ts';
import { AccountingLedger, type CowEvent } from './ledger.ts';

const PAGES = 48;
const WRITES = 10;
const SAME = 4;
const GAP_MS = 150;

let backend: QemuBackend;
let guests: Guest[];
let image: GuestImage;
let hasher: PageHasher;

beforeAll(async () => {
  image = await defaultImage();
  hasher = await defaultHasher();
  backend = await QemuBackend.create({ accelerator: 'auto' });
  guests = await backend.provision(image, 2, {
    memoryMiB: 128,
    kaslr: false,
    workload: { name: 'cowprobe', params: { pages: PAGES, writes: WRITES, same: SAME, doorbell: 1, gap_ms: GAP_MS, interval_ms: 500 } },
  });
}, 120_000);
afterAll(async () => backend?.close());

async function paused<T>(work: () => T | Promise<T>): Promise<T> {
  await Promise.all(guests.map((g) => g.pause()));
  try {
    return await work();
  } finally {
    await Promise.all(guests.map((g) => g.resume()));
  }
}

describe('CoW faults against a known answer (cowprobe, QEMU, content-reread)', () => {
  it('counts exactly N faults per guest on the probe pages, however the writes fall into ticks', async () => {
    const probes: CowprobeState[] = [];
    for (const guest of guests) probes.push(await waitForCowprobe(guest, 'ready', 30_000));
    const probePages = probes.map((p) => new Set(p.gfns));
    const isProbe = (event: CowEvent) => probePages[event.guest]!.has(event.gfn);

    const strategy = new ContentStrategy({ zeroPages: true });
    const wholeMemory = new AccountingLedger('content', guests, hasher);
    // Only the probe pages, shared once: every fault this ledger sees is a probe write.
    const probeOnly = new AccountingLedger('probe', guests, hasher);
    const context = { guests, image, kernel: kernelInfo(image), hasher };
    const tick = async (first: boolean) =>
      paused(async () => {
        const residency = guests.map((g) => g.hostResidency?.residentPages());
        wholeMemory.setHostResidency(residency);
        const events = first ? [] : wholeMemory.detectCow();
        wholeMemory.apply((await strategy.scan({ ...context, residency })).groups);
        const probeEvents = first ? [] : probeOnly.detectCow();
        // Page i of every guest holds the same bytes: one group per probe page index.
        if (first) probeOnly.apply(probes[0]!.gfns.map((_, i) => ({ pages: probes.map((p, g) => ({ guest: g, gfn: p.gfns[i]! })) })));
        return { events, probeEvents };
      });

    await tick(true);
    // Everything is shared: now let the probes write (the doorbell, not a clock, starts them).
    for (const [g, guest] of guests.entries()) await ringCowprobe(guest, probes[g]!);
    expect(probeOnly.stats()).toMatchObject({ sharedPages: 2 * PAGES, framesSaved: PAGES });
    probePages.forEach((gfns, guest) => {
      for (const gfn of gfns) expect(wholeMemory.isShared({ guest, gfn })).toBe(true);
    });

    // Tick while the probes write, until both said "written", then once more.
    const seen: CowEvent[] = [];
    const probeSeen: CowEvent[] = [];
    let ticksWithProbeFaults = 0;
    const deadline = Date.now() + 60_000;
    let done = false;
    while (!done) {
      expect(Date.now()).toBeLessThan(deadline);
      done = guests.every((g) => g.console!.lines('XME-COWPROBE written').length > 0);
      await new Promise((resolve) => setTimeout(resolve, 250));
      const { events, probeEvents } = await tick(false);
      const probeFaults = events.filter(isProbe);
      if (probeFaults.length) ticksWithProbeFaults++;
      seen.push(...probeFaults);
      probeSeen.push(...probeEvents);
    }
    for (const guest of guests.keys()) {
      expect(seen.filter((e) => e.guest === guest)).toHaveLength(WRITES);
      expect(probeSeen.filter((e) => e.guest === guest)).toHaveLength(WRITES);
      expect(new Set(seen.filter((e) => e.guest === guest).map((e) => e.gfn)).size).toBe(WRITES); // each written page once
    }
    expect(ticksWithProbeFaults).toBeGreaterThan(1); // the writes really spanned several ticks
    const stats = probeOnly.stats();
    expect(stats.cowFaults).toBe(2 * WRITES);
    // Per written pair one copy (the first writer); the second writer was a lone survivor.
    expect(stats.cowCopies).toBe(WRITES);
    expect(stats).toMatchObject({ sharedPages: 2 * (PAGES - WRITES), framesSaved: PAGES - WRITES });
    process.stdout.write(
      `COW-KNOWN-ANSWER qemu ${JSON.stringify({ writes: WRITES, same: SAME, per_guest_content_reread: guests.map((_, g) => seen.filter((e) => e.guest === g).length), whole_memory_faults_total: wholeMemory.stats().cowFaults, ticks_with_probe_faults: ticksWithProbeFaults })}\n`,
    );
  }, 120_000);
});
