/**
 * Page classes on real guests (QEMU, the cloud image's Debian 6.1 kernel), one booted with nokaslr and one
 * with KASLR, both running the cowprobe workload, both paused while they are read. Known answers:
 *  - the class counts agree with the guest kernel's own counters read from its memory at the same pause
 *    (vm_zone_stat / vm_node_stat with the per-CPU differentials folded in; Σ per_cpu_pages.count), within
 *    TOLERANCE (a vCPU paused inside an allocation may leave a few pages in flight);
 *  - busybox in the initramfs (rootfs, shmem) is one inode of 1,982,256 bytes whose 484 frames hold indexes
 *    0…483 once each, byte-equal to the file in the image's initramfs;
 *  - [_text, _etext) is kernel text, [__start_rodata, __end_rodata) kernel rodata;
 *  - the cowprobe's frames (it prints their frame numbers) are anonymous;
 * and on copies of the nokaslr guest's memory (an in-memory guest: no vCPU, no image, as a replayed guest):
 * the layout profile from the BTF in guest memory equals the image's; a VMCOREINFO that disagrees, 5-level
 * paging, a struct page pointing outside guest memory, a tail whose head is no compound head, and struct
 * pages that change between reads are each refused, naming the guest and the check.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { Guest } from '../backends/types.ts';
import type { GuestImage } from '../images/manifest.ts';
import { readCpio } from '../images/cpio.ts';
import { defaultImage } from '../testing/e2e.ts';
import { MemoryGuest } from '../testing/memory-guest.ts';
import { measureThreadCpu } from '../util/thread-cpu.ts';
import { waitForCowprobe, type CowprobeState } from '../workloads/cowprobe.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import { kernelInfo, type KernelInfo } from './kernel-info.ts';
import { locateKernelInMemory } from './kernel-locator.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { KernelMemory, PageClassRefusal } from './kernel-memory.ts';
import { profileFromGuestMemory, profileFromVmlinuz } from './layout-profile.ts';
import { agreementWithKernel, type PageClasses, PageClassifier } from './page-classes.ts';

const MEMORY_MIB = 256;
const PROBE_PAGES = 64;
const BUSYBOX_BYTES = 1_982_256;
/** Allowed |classified − kernel| per row: max(4 frames, 0.5 %). */
const tolerance = (kernel: number) => Math.max(4, Math.ceil(kernel * 0.005));

interface Booted {
  label: string;
  guest: Guest;
  probe: CowprobeState;
  placement: KernelPlacement;
  classifier: PageClassifier;
  classes: PageClasses;
  cpuMs: number[];
}

let image: GuestImage;
let kernel: KernelInfo;
let backend: QemuBackend;
const booted: Booted[] = [];
let cache: string;

beforeAll(async () => {
  image = await defaultImage();
  kernel = kernelInfo(image);
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-page-classes-'));
  backend = await QemuBackend.create({ accelerator: 'auto' });
  const workload = { name: 'cowprobe' as const, params: { pages: PROBE_PAGES, writes: 0, same: 0, delay_ms: 600_000, interval_ms: 500 } };
  const [plain, randomized] = await Promise.all([
    backend.provision(image, 1, { memoryMiB: MEMORY_MIB, kaslr: false, workload }),
    backend.provision(image, 1, { memoryMiB: MEMORY_MIB, kaslr: true, workload }),
  ]);
  for (const [label, guest] of [
    ['nokaslr', plain[0]!],
    ['kaslr', randomized[0]!],
  ] as const) {
    const probe = await waitForCowprobe(guest, 'ready', 60_000);
    await guest.pause(); // paused until afterAll: every test reads the same memory
    const placement = locateKernelInMemory(guest, kernel);
    const classifier = PageClassifier.open(guest, kernel, placement, { cache });
    const cpuMs: number[] = [];
    let classes: PageClasses | undefined;
    for (let i = 0; i < 5; i++) {
      const run = await measureThreadCpu(() => classifier.classify());
      cpuMs.push(run.cpuMs);
      classes = run.value;
    }
    booted.push({ label, guest, probe, placement, classifier, classes: classes!, cpuMs });
  }
}, 240_000);

afterAll(async () => {
  await backend?.close();
  if (cache) fs.rmSync(cache, { recursive: true, force: true });
});

const log = (line: string) => process.stderr.write(`[page-classes] ${line}\n`);

describe('page classes of real guests', () => {
  it('agree with the kernel’s own counters, with KASLR off and on', () => {
    for (const { label, classes, cpuMs } of booted) {
      const rows = agreementWithKernel(classes);
      log(`${label}: ${JSON.stringify(classes.counts())} unknown ${JSON.stringify(classes.unknownReasons())}`);
      for (const row of rows)
        log(`${label}: ${row.what.padEnd(26)} classified ${String(row.classified).padStart(6)}  kernel ${String(row.kernel).padStart(6)}  (${row.counter})`);
      const gib = (classes.frames * PAGE_SIZE) / 2 ** 30;
      log(
        `${label}: classify CPU ms ${cpuMs.map((ms) => ms.toFixed(1)).join(' ')} → ${(Math.min(...cpuMs.slice(1)) / gib).toFixed(0)} ms per GiB (best steady)`,
      );
      const row = (what: string) => rows.find((r) => r.what === what)!;
      for (const what of [
        'free (buddy)',
        'free (per-CPU lists)',
        'page cache + shmem',
        'shmem',
        'file dirty',
        'writeback',
        'anon',
        'page tables',
        'slab + unmarked compound',
      ]) {
        const { classified, kernel: counted } = row(what);
        expect(Math.abs(classified - counted), `${label}: ${what}: classified ${classified}, kernel ${counted}`).toBeLessThanOrEqual(tolerance(counted));
      }
      // PG_slab pages are slab; 6.1's large kmalloc pages (unmarked compounds) are counted as slab too.
      expect(row('slab (PG_slab)').classified).toBeLessThanOrEqual(row('slab (PG_slab)').kernel + tolerance(row('slab (PG_slab)').kernel));
      // Every frame has a class, and the free frames match the zones' own free lists.
      const counts = classes.counts();
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(classes.frames);
      expect(classes.counters.freeAreaPages).toBe(classes.counters.zone.NR_FREE_PAGES);
    }
  });

  it('finds busybox in the rootfs as one shmem inode: indexes 0…483 once each, byte-equal to the file', () => {
    // The busybox image's initramfs (named through the manifest's file table, which every image kind has).
    const initramfs = (image.manifest.files as Record<string, { file: string } | undefined>).initramfs;
    expect(initramfs, 'the default image is a kernel + busybox initramfs image').toBeDefined();
    const busybox = readCpio(fs.readFileSync(path.join(image.dir, initramfs!.file))).find((m) => m.name === 'bin/busybox')!.data;
    expect(busybox.length).toBe(BUSYBOX_BYTES);
    for (const { label, guest, classes } of booted) {
      const inodes = classes.files.map((file, i) => ({ file, i })).filter(({ file }) => file.size === BUSYBOX_BYTES);
      expect(inodes, `${label}: inodes of busybox's size`).toHaveLength(1);
      const { file, i: fileRef } = inodes[0]!;
      expect(file).toMatchObject({ fsType: 'rootfs', deviceName: 'rootfs' });
      expect(file.mode & 0o170000).toBe(0o100000); // a regular file
      const frames = classes.framesOf('shmem').filter((frame) => classes.ref[frame] === fileRef);
      const indexes = frames.map((frame) => classes.fileIndex[frame]!).sort((a, b) => a - b);
      expect(indexes).toEqual(Array.from({ length: Math.ceil(BUSYBOX_BYTES / PAGE_SIZE) }, (_, index) => index));
      for (const frame of frames) {
        const index = classes.fileIndex[frame]!;
        const expected = busybox.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE);
        const page = guest.pages(frame, 1);
        expect(page.subarray(0, expected.length).equals(expected), `${label}: frame 0x${frame.toString(16)} = busybox page ${index}`).toBe(true);
        expect(page.subarray(expected.length).every((byte) => byte === 0)).toBe(true);
        expect(classes.classOf(frame)).toMatchObject({ kind: 'shmem', index, file: { ino: file.ino } });
      }
    }
  });

  it('gives [_text, _etext) as kernel text and [__start_rodata, __end_rodata) as kernel rodata', () => {
    const { layout } = kernel;
    for (const { label, classes, placement } of booted) {
      const frame = (address: bigint) => Number((placement.physicalBase + (address - layout.text)) / BigInt(PAGE_SIZE));
      for (const [kind, range] of [
        ['kernel-text', layout.code],
        ['kernel-rodata', layout.rodata],
      ] as const) {
        const first = frame(range.start);
        const last = frame(range.end - 1n);
        const other = Array.from({ length: last - first + 1 }, (_, i) => first + i).filter((f) => classes.kindOf(f) !== kind);
        expect(other, `${label}: frames of ${kind} classed otherwise`).toEqual([]);
      }
      expect(classes.counts()['kernel-text']).toBe(frame(layout.code.end - 1n) - frame(layout.code.start) + 1);
    }
  });

  it('gives the cowprobe’s frames as anonymous', () => {
    for (const { label, probe, classes } of booted) {
      expect(probe.gfns).toHaveLength(PROBE_PAGES);
      for (const gfn of probe.gfns)
        expect(classes.classOf(gfn), `${label}: cowprobe frame 0x${gfn.toString(16)}`).toMatchObject({ kind: 'anon', ksm: false, mapped: true });
    }
  });

  it('reads vmemmap_base and page_offset_base from the guest: fixed with nokaslr, randomised with KASLR', () => {
    const [plain, randomized] = booted;
    expect(plain!.classifier.memory.vmemmapBase).toBe(0xffffea0000000000n);
    expect(plain!.classifier.memory.pageOffsetBase).toBe(0xffff888000000000n);
    // A randomised layout landing on both defaults is possible but very unlikely.
    expect(randomized!.classifier.memory.vmemmapBase !== 0xffffea0000000000n || randomized!.classifier.memory.pageOffsetBase !== 0xffff888000000000n).toBe(
      true,
    );
  });
});

/** An in-memory guest holding a copy of a real guest's memory: no vCPU, no image (as a replayed guest). */
function copyOf(source: Booted, id = 'copy'): MemoryGuest {
  const copy = new MemoryGuest(id, source.guest.memoryPages);
  source.guest.pages(0, source.guest.memoryPages).copy(copy.ram);
  return copy;
}

/** Guest-physical address of frame's struct page in a copy. */
function structPageAt(copy: Guest, source: Booted, frame: number): number {
  const memory = KernelMemory.open(copy, kernel, source.placement);
  return Number(memory.physical(memory.vmemmapBase + BigInt(frame * 64), 'struct page'));
}

describe('page classes of a copy of guest memory (no vCPU, no image)', () => {
  it('make the layout profile from the BTF in guest memory, equal to the image’s', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const fromMemory = profileFromGuestMemory(copy, kernel, source.placement, cache);
    const fromImage = profileFromVmlinuz(image.path('vmlinuz'), kernel.version, cache)!;
    expect(fromMemory.data.btf.from).toBe('guest memory');
    expect(fromMemory.data.btf.sha256).toBe(fromImage.data.btf.sha256);
    expect(fromMemory.data.structs).toEqual(fromImage.data.structs);
    expect(fromMemory.data.enums).toEqual(fromImage.data.enums);
    // And a copy classifies exactly as the live guest did (the classifier takes its profile from memory here).
    const classes = PageClassifier.open(copy, kernel, source.placement, { cache }).classify();
    expect(classes.counts()).toEqual(source.classes.counts());
  });

  it('refuses a VMCOREINFO that disagrees with the layout profile', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    // The text is in vmcoreinfo_data's page and again in the ELF note the kernel keeps for kexec: change every copy.
    let copies = 0;
    for (let at = copy.ram.indexOf('OFFSET(page.mapping)=24\n'); at >= 0; at = copy.ram.indexOf('OFFSET(page.mapping)=24\n', at + 1), copies++) {
      copy.ram.write('OFFSET(page.mapping)=16\n', at, 'latin1');
    }
    expect(copies).toBeGreaterThan(0);
    expect(() => PageClassifier.open(copy, kernel, source.placement, { cache })).toThrow(
      /guest copy: page classes refused \(VMCOREINFO\): .*OFFSET\(page.mapping\)=16, the layout profile and 6.1 rules say 24/,
    );
  });

  it('refuses 5-level paging', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const memory = KernelMemory.open(copy, kernel, source.placement);
    copy.ram.writeUInt32LE(1, Number(memory.symbolPhysical('__pgtable_l5_enabled')));
    expect(() => PageClassifier.open(copy, kernel, source.placement, { cache })).toThrow(/guest copy: page classes refused \(5-level paging\)/);
  });

  it('refuses a struct page whose mapping points outside guest memory', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    const frame = source.classes.framesOf('shmem')[0]!;
    const memory = classifier.memory;
    // 1 GiB past the end of guest RAM in the direct map: no page table maps it.
    const nowhere = memory.pageOffsetBase + BigInt(copy.memoryPages * PAGE_SIZE) + (1n << 30n);
    copy.ram.writeBigUInt64LE(nowhere, structPageAt(copy, source, frame) + 24);
    expect(() => classifier.classify()).toThrow(PageClassRefusal);
    expect(() => classifier.classify()).toThrow(
      /guest copy: page classes refused \(pointer\): the address_space of frame 0x[0-9a-f]+ points to 0x[0-9a-f]+, (which the kernel's page tables do not map|mapped at guest-physical 0x[0-9a-f]+, outside guest memory)/,
    );
  });

  it('refuses a tail whose compound_head is no compound head', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    const frame = source.classes.framesOf('anon').find((f) => f > 0 && source.classes.order[f - 1] === 0 && source.classes.kindOf(f - 1) !== 'free')!;
    const notAHead = classifier.memory.vmemmapBase + BigInt((frame - 1) * 64);
    copy.ram.writeBigUInt64LE(notAHead | 1n, structPageAt(copy, source, frame) + 8);
    expect(() => classifier.classify()).toThrow(
      /guest copy: page classes refused \(compound head\): tail 0x[0-9a-f]+ points to frame 0x[0-9a-f]+, which is no compound head/,
    );
  });

  it('re-checks a free block verified at the last tick once any of its frames changed', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    const first = classifier.classify(); // verifies every free block
    // A frame inside a free block of order ≥ 1 (not its head) that a later tick finds in use: refcount 1.
    const frame = first.framesOf('free').find((f) => first.head[f] !== f && first.bits[f] === 0)!;
    expect(classifier.classify().counts()).toEqual(first.counts()); // unchanged: the same classes again
    copy.ram.writeInt32LE(1, structPageAt(copy, source, frame) + 52);
    expect(() => classifier.classify()).toThrow(
      new RegExp(
        `guest copy: page classes refused \\(free block\\): the free block of order \\d+ at frame 0x${first.head[frame]!.toString(16)} holds frame 0x${frame.toString(16)} with refcount 1`,
      ),
    );
  });

  it('stamps the entry of a file whose times changed since the last classification (FileInfo.changedAt), and keeps it while the file holds still', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    const first = classifier.classify();
    expect(first.sequence).toBe(1);
    expect(first.files.filter((f) => f.changedAt !== undefined)).toEqual([]);
    const busybox = first.files.findIndex((f) => f.size === BUSYBOX_BYTES);
    const file = first.files[busybox]!;
    // busybox's inode gets a later mtime, as a write would give it; none of its struct pages changes.
    const { profile } = classifier;
    const mtimeAt = file.inode + BigInt(profile.offset('inode', 'i_mtime') + profile.offset('timespec64', 'tv_sec'));
    copy.ram.writeBigInt64LE(BigInt(file.mtime.sec + 1), Number(classifier.memory.physical(mtimeAt, 'busybox inode')));
    const second = classifier.classify();
    expect(second.sequence).toBe(2);
    const changed = second.files[busybox]!;
    expect(changed).not.toBe(file);
    expect(changed).toMatchObject({ ino: file.ino, generation: file.generation, mtime: { sec: file.mtime.sec + 1 }, changedAt: 2 });
    expect(second.files.filter((f) => f.changedAt !== undefined)).toHaveLength(1);
    const third = classifier.classify();
    expect(third.sequence).toBe(3);
    expect(third.files[busybox]).toBe(changed); // the same entry, still stamped 2: the proposer counts from there
  });

  it('gives an anonymous page no process maps any more as anon, unmapped, and leaves it out of the comparison with NR_ANON_MAPPED', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    const anonRow = (c: PageClasses) => agreementWithKernel(c).find((row) => row.what === 'anon')!;
    const before = classifier.classify();
    const frame = source.probe.gfns[0]!;
    // As an exiting process leaves it in the kernel's free batch: unmapped (_mapcount −1), still marked anonymous.
    copy.ram.writeInt32LE(-1, structPageAt(copy, source, frame) + classifier.profile.offset('page', 'page_type'));
    const after = classifier.classify();
    expect(after.classOf(frame)).toMatchObject({ kind: 'anon', mapped: false });
    expect(after.counts().anon).toBe(before.counts().anon);
    expect(anonRow(after).classified).toBe(anonRow(before).classified - 1);
  });

  it('refuses struct pages that change between the first and the second read', () => {
    const source = booted[0]!;
    const copy = copyOf(source);
    const classifier = PageClassifier.open(copy, kernel, source.placement, { cache });
    // A guest that keeps running: every read of the frame holding this struct page sees its refcount grown.
    const frame = source.classes.framesOf('unknown').find((f) => source.classes.classOf(f).kind === 'unknown' && source.classes.ref[f] === 0)!;
    const at = structPageAt(copy, source, frame) + 52;
    const holder = Math.floor(at / PAGE_SIZE);
    const pages = copy.pages.bind(copy);
    copy.pages = (first: number, count: number) => {
      if (holder >= first && holder < first + count) copy.ram.writeInt32LE(copy.ram.readInt32LE(at) + 1, at);
      return pages(first, count);
    };
    expect(() => classifier.classify()).toThrow(/guest copy: page classes refused \(guest changed\): 1 struct pages changed while the classes were read/);
  });
});
