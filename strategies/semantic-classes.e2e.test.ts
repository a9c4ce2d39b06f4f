/**
 * Sharing by meaning on real guests: 2 × 256 MiB busybox guests of the cloud image under QEMU (KASLR on),
 * scored by the tick loop with semantic-pagecache, semantic-free, semantic-union and content side by side.
 * Known answers, checked at every tick while the guests are still paused (the tick observer):
 *  - semantic-pagecache shares busybox, one shmem inode of 1,982,256 bytes (484 pages) in the rootfs, across
 *    the guests: ≥ 480 of its frames in shared state with their partner, byte-verified;
 *  - semantic-free holds reclaimed exactly the frames the classes found buddy-free: the kernel's own
 *    NR_FREE_PAGES, summed over the guests, within the classifier's tolerance (max(4, 0.5%) per guest);
 *  - no ledger holds two pages on one frame whose bytes differ (every frame of every ledger re-read);
 *  - the classification is billed to the three class strategies only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../harness/backends/qemu/qemu-backend.ts';
import type { Guest } from '../harness/backends/types.ts';
import { defaultHasher } from '../harness/hashing/page-hasher.ts';
import { kernelInfo } from '../harness/introspection/kernel-info.ts';
import { runRepetition } from '../harness/experiment/tick-loop.ts';
import { TickPageClassifier, type PageClassesOrRefusal, type PageClassSource } from '../harness/experiment/tick-page-classes.ts';
import type { GuestImage } from '../harness/images/manifest.ts';
import { parseScenario } from '../harness/scenario/scenario.ts';
import type { StrategySample, TickSample } from '../harness/results/tick-sample.ts';
import type { RepetitionMetrics } from '../harness/results/summary.ts';
import { AccountingLedger, type Ledger } from '../harness/sharing/ledger.ts';
import { pageBytes } from '../harness/sharing/resident-pages.ts';
import { defaultImage } from '../harness/testing/e2e.ts';
import { classesDiff } from '../harness/testing/classes-diff.ts';
import type { PackedGroup } from '../harness/sharing/packed-group.ts';
import type { ShareGroup } from '../harness/sharing/types.ts';
import { ClassKeyProposer, type KeyKind } from './class-keys.ts';

const MEMORY_MIB = 256;
const BUSYBOX_BYTES = 1_982_256;
const BUSYBOX_PAGES = Math.ceil(BUSYBOX_BYTES / 4096);
const tolerance = (kernel: number) => Math.max(4, Math.ceil(kernel * 0.005));

/** The provider the tick loop uses, remembering what it gave at the last tick. */
class Remembering implements PageClassSource {
  last: PageClassesOrRefusal | undefined;
  constructor(private readonly inner: PageClassSource) {}
  classify(guests: readonly Guest[], paused: boolean): PageClassesOrRefusal {
    return (this.last = this.inner.classify(guests, paused));
  }
  takeNotes(): string[] {
    return this.inner.takeNotes();
  }
}

interface TickCheck {
  tick: number;
  busyboxShared: number;
  reclaimed: number;
  nrFree: number;
  allowed: number;
  differingPairs: number;
  frames: number;
  /** Per guest: frames the incremental classification redid (undefined: from scratch), and frames whose class differs from a fresh one's. */
  incremental: { redone: number | undefined; differing: number; examples: string[] }[];
  /** The class-key proposer kept from tick to tick against a new one on the same classes: frames slotted again, and whether groups and figures agree. */
  proposer: { reslotted: number; sameGroups: boolean; sameFigures: boolean };
}

const KEY_KINDS: KeyKind[] = ['module_text', 'pagecache', 'shmem'];
const keptProposer = new ClassKeyProposer(KEY_KINDS);
const groupsAsText = (groups: ShareGroup[]) => groups.map((g) => [...(g as PackedGroup).indices].join(',')).sort();

let image: GuestImage;
let backend: QemuBackend;
const samples: TickSample[] = [];
const checks: TickCheck[] = [];
const ledgers = new Map<string, Ledger>();
let metrics: RepetitionMetrics[] | undefined;
const notes: string[] = [];
const log = (line: string) => process.stderr.write(`[semantic-classes] ${line}\n`);

beforeAll(async () => {
  image = await defaultImage();
  const kernel = kernelInfo(image);
  const hasher = await defaultHasher();
  backend = await QemuBackend.create({ accelerator: 'auto' });
  const scenario = parseScenario({
    name: 'semantic-classes-e2e',
    guests: 2,
    memoryMiB: MEMORY_MIB,
    kaslr: true,
    workload: { name: 'idle' },
    warmupS: 2,
    durationS: 4,
    tickS: 2,
    strategies: ['semantic-pagecache', 'semantic-free', 'semantic-union', 'content'],
  });
  const guests = await backend.provision(image, 2, { memoryMiB: MEMORY_MIB, kaslr: true, workload: scenario.workload });
  const source = new Remembering(new TickPageClassifier(kernel));
  metrics = await runRepetition({
    scenario,
    backend,
    guests,
    image,
    kernel,
    hasher,
    memoryMiB: MEMORY_MIB,
    repetition: 1,
    emit: (sample) => samples.push(sample),
    say: log,
    note: (text) => notes.push(text),
    warn: (text) => log(`warning: ${text}`),
    onLedger: (ledger) => ledgers.set(ledger.strategy, ledger),
    stopRequested: () => false,
    pageClassSource: source,
    tickObserver: {
      afterTick: async (tick, _tS, paused, residency) => {
        const classes = source.last;
        if (!classes || 'refused' in classes)
          throw new Error(`tick ${tick}: page classes refused: ${classes && 'refused' in classes ? classes.refused : 'none'}`);
        // busybox's frames in g0, and how many are shared by semantic-pagecache (with g1's same page: checked below).
        const pagecache = ledgers.get('semantic-pagecache') as AccountingLedger;
        const g0 = classes.guests[0]!;
        const inode = g0.files.findIndex((file) => file.size === BUSYBOX_BYTES);
        const busyboxFrames = g0.framesOf('shmem').filter((frame) => g0.ref[frame] === inode);
        const busyboxShared = busyboxFrames.filter((gfn) => pagecache.isShared({ guest: 0, gfn })).length;
        // Reclaimed free frames against the kernel's own count of buddy-free pages.
        const free = ledgers.get('semantic-free')!.stats();
        const nrFree = classes.guests.reduce((sum, c) => sum + c.counters.zone.NR_FREE_PAGES!, 0);
        const allowed = classes.guests.reduce((sum, c) => sum + tolerance(c.counters.zone.NR_FREE_PAGES!), 0);
        // Every frame of every accounting ledger: all its pages byte-equal now.
        let differingPairs = 0;
        let frames = 0;
        for (const ledger of ledgers.values()) {
          if (!(ledger instanceof AccountingLedger)) continue;
          for (const members of ledger.groupsForEnforcement()) {
            frames++;
            const bytes = (ref: { guest: number; gfn: number }) => pageBytes(paused[ref.guest]!, ref.gfn, residency[ref.guest]);
            const first = bytes(members[0]!);
            for (const member of members.slice(1)) if (!bytes(member).equals(first)) differingPairs++;
          }
        }
        // The tick's classes (incremental after tick 0) against a classification from scratch at the same pause.
        const fresh = new TickPageClassifier(kernel).classify(paused, true);
        if ('refused' in fresh) throw new Error(`tick ${tick}: a fresh classification refused: ${fresh.refused}`);
        const incremental = classes.guests.map((c, g) => ({ redone: c.delta?.redone, ...classesDiff(c, fresh.guests[g]!) }));
        const kept = keptProposer.propose(classes.guests);
        const anew = new ClassKeyProposer(KEY_KINDS).propose(classes.guests);
        const proposer = {
          reslotted: keptProposer.lastReslotted,
          sameGroups: JSON.stringify(groupsAsText(kept.groups)) === JSON.stringify(groupsAsText(anew.groups)),
          sameFigures: JSON.stringify(kept.metrics) === JSON.stringify(anew.metrics),
        };
        checks.push({ tick, busyboxShared, reclaimed: free.reclaimedFree ?? -1, nrFree, allowed, differingPairs, frames, incremental, proposer });
        return Promise.resolve();
      },
    },
  });
}, 300_000);

afterAll(async () => {
  await backend?.close();
});

const totals = (label: string) => samples.filter((s): s is StrategySample => s.scope === 'all' && s.strategy === label);

describe('sharing by meaning on real busybox guests', () => {
  it('scored every tick without a refusal', () => {
    expect(checks.map((c) => c.tick)).toEqual([0, 1, 2]);
    for (const label of ['semantic-pagecache', 'semantic-free', 'semantic-union', 'content']) {
      expect(totals(label).map((s) => s.status)).toEqual(['ok', 'ok', 'ok']);
    }
    for (const note of notes) log(`note: ${note}`);
  });

  it('semantic-pagecache shares busybox’s page-cache pages across the guests, byte-verified', () => {
    for (const check of checks) expect(check.busyboxShared, `tick ${check.tick}`).toBeGreaterThanOrEqual(480);
    for (const check of checks) expect(check.busyboxShared).toBeLessThanOrEqual(BUSYBOX_PAGES);
    const last = totals('semantic-pagecache').at(-1)!;
    log(`semantic-pagecache: ${JSON.stringify(last.metrics)}; frames saved ${last.framesSaved} (across ${last.framesSavedAcrossGuests})`);
    expect(last.framesSavedAcrossGuests).toBeGreaterThanOrEqual(480);
    expect(last.metrics.shmem_key_pages).toBeGreaterThanOrEqual(2 * 480);
  });

  it('semantic-free reclaims the kernel’s NR_FREE_PAGES, apart from frames saved', () => {
    for (const check of checks) {
      log(`tick ${check.tick}: reclaimed ${check.reclaimed}, NR_FREE_PAGES ${check.nrFree} (±${check.allowed}), busybox shared ${check.busyboxShared}`);
      expect(Math.abs(check.reclaimed - check.nrFree), `tick ${check.tick}`).toBeLessThanOrEqual(check.allowed);
    }
    for (const sample of totals('semantic-free')) expect(sample).toMatchObject({ sharedPages: 0, framesSaved: 0 });
    const union = totals('semantic-union').at(-1)!;
    expect(union.reclaimedFreePages).toBeGreaterThan(0);
  });

  it('classifies incrementally after tick 0, and gives what a classification from scratch gives', () => {
    for (const check of checks) {
      log(
        `tick ${check.tick}: redone ${check.incremental.map((g) => g.redone ?? 'all').join(', ')} frames; differing ${check.incremental.map((g) => g.differing).join(', ')}`,
      );
      for (const guest of check.incremental) expect(guest.examples, `tick ${check.tick}`).toEqual([]);
    }
    const later = checks.filter((c) => c.tick > 0).flatMap((c) => c.incremental);
    expect(later.length).toBeGreaterThan(0);
    for (const guest of later) expect(guest.redone).toBeLessThan((MEMORY_MIB * 256) / 2);
  });

  it('proposes from the kept slots exactly what a new proposer proposes, slotting again only what changed', () => {
    for (const check of checks) {
      log(`tick ${check.tick}: proposer slotted ${check.proposer.reslotted} frames again`);
      expect(check.proposer, `tick ${check.tick}`).toMatchObject({ sameGroups: true, sameFigures: true });
    }
    for (const check of checks.filter((c) => c.tick > 0)) expect(check.proposer.reslotted).toBeLessThan(MEMORY_MIB * 256);
  });

  it('shares no pages whose bytes differ, in any ledger', () => {
    for (const check of checks) {
      expect(check.frames).toBeGreaterThan(0);
      expect(check.differingPairs, `tick ${check.tick}`).toBe(0);
    }
  });

  // With KASLR much of code and rodata differs between guests (relocated pointers): semantic-union compares those
  // pages again only every 16 ticks (held back, counted as differing); the pages already one frame are not compared.
  it('compares kernel code and rodata only where its ledger does not hold them as one frame yet and they were not found differing: after tick 0 it reads fewer, finds the same', () => {
    const union = totals('semantic-union');
    const [first, ...later] = union;
    const identical = (s: StrategySample) => [s.metrics.kernel_code_identical_pages, s.metrics.kernel_rodata_identical_pages];
    expect(first!.metrics.kernel_code_identical_pages).toBeGreaterThan(1000);
    expect(first!.metrics.kernel_code_held_back_pages).toBe(0);
    for (const sample of later) {
      expect(identical(sample)).toEqual(identical(first!));
      expect(sample.cost.pagesRead).toBeLessThan(first!.cost.pagesRead * 0.6);
      // Known answer: every page found differing at tick 0 is held back at ticks 1 and 2.
      for (const range of ['kernel_code', 'kernel_rodata'])
        expect(sample.metrics[`${range}_held_back_pages`], range).toBe(first!.metrics[`${range}_pages`]! - first!.metrics[`${range}_identical_pages`]!);
    }
    log(`semantic-union pages read per tick: ${union.map((s) => s.cost.pagesRead).join(', ')}`);
  });

  it('bills the classification to the class strategies only; logs the figures against content', () => {
    for (const label of ['semantic-pagecache', 'semantic-free', 'semantic-union']) {
      for (const sample of totals(label)) expect(sample.cost.classifyCpuMs).toBeGreaterThan(0);
    }
    for (const sample of totals('content')) expect(sample.cost.classifyCpuMs).toBeUndefined();
    for (const row of metrics ?? []) {
      const v = row.values;
      log(
        `${row.strategy.padEnd(19)} frames saved ${v.frames_saved} reclaimed ${v.reclaimed_free_pages ?? '-'} together ${v.frames_saved_and_reclaimed ?? v.frames_saved}; ` +
          `tick ${v.tick_cpu_ms?.toFixed(1)} ms (scan ${v.scan_cpu_ms?.toFixed(1)}, classify ${v.classify_cpu_ms?.toFixed(1) ?? '-'}, mechanism ${v.mechanism_cpu_ms?.toFixed(1)})`,
      );
    }
  });
});
