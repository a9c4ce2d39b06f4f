/**
 * One tick's page classes cross-checked against drgn (issue 19, item 3): a paused 256 MiB busybox guest of the
 * cloud image (KASLR on, cowprobe holding anonymous pages) is classified by xme, then its memory is written as an
 * ELF core file with the guest's own VMCOREINFO as the note, and drgn-page-classes.py classifies the same frames
 * with drgn (types from the kernel's DWARF in the -dbg vmlinux, PG_* bits from its enum pageflags, drgn's own page
 * walk). Every frame must get the same class, and every page-cache and shmem frame the same inode number and page
 * index. Classes drgn has no helper for are compared at drgn's resolution: per-CPU free pages, module text and
 * xme's 'unknown' reasons are all "other" to it, kernel text/rodata/data "reserved".
 *
 * Needs Debian's python3-drgn (/usr/bin/python3; .ci/run installs it) and downloads the image kernel's -dbg package
 * once (283 MB; its 590 MB vmlinux is kept in the cache). Without python3-drgn the test is skipped, saying so.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { Guest } from '../backends/types.ts';
import { downloadPackage } from '../images/debian-packages.ts';
import type { GuestImage } from '../images/manifest.ts';
import { defaultImage } from '../testing/e2e.ts';
import { cacheDir } from '../util/paths.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import { waitForCowprobe } from '../workloads/cowprobe.ts';
import { kernelInfo } from './kernel-info.ts';
import { locateKernelInMemory } from './kernel-locator.ts';
import { KernelMemory } from './kernel-memory.ts';
import { FRAME_BITS, type PageClasses, PageClassifier, type PageKind } from './page-classes.ts';
import { readVmcoreinfo } from './vmcoreinfo.ts';

const PYTHON = '/usr/bin/python3';
const ORACLE = path.join(import.meta.dirname, 'drgn-page-classes.py');
const MEMORY_MIB = 256;

const drgnMissing = spawnSync(PYTHON, ['-c', 'import drgn'], { encoding: 'utf8' }).status !== 0;
if (drgnMissing) process.stderr.write('[drgn] SKIPPED: python3-drgn is not installed (apt-get install python3-drgn; .ci/run does)\n');

/** xme's class at drgn's resolution: the letters of drgn-page-classes.py. */
function letterOf(kind: PageKind, bits: number): string {
  switch (kind) {
    case 'free':
      return bits & FRAME_BITS.perCpu ? 'o' : 'f';
    case 'pagecache':
      return 'c';
    case 'shmem':
      return 's';
    case 'anon':
      return 'a';
    case 'slab':
      return 'l';
    case 'pagetable':
      return 't';
    case 'kernel-text':
    case 'kernel-rodata':
    case 'kernel-data':
    case 'reserved':
      return 'r';
    default:
      return 'o';
  }
}

/**
 * An ELF64 core file as kdump writes one: a VMCOREINFO note (the guest's own text), a PT_LOAD of all RAM at the
 * direct map and one of the kernel image at its (KASLR) virtual address over the same file bytes — drgn reads the
 * kernel's page tables through the latter before it can walk anything.
 */
function writeCore(file: string, guest: Guest, vmcoreinfo: string, pageOffsetBase: bigint, image: { virtual: bigint; physical: bigint; bytes: bigint }): void {
  const name = Buffer.from('VMCOREINFO\0');
  const desc = Buffer.from(vmcoreinfo);
  const pad4 = (n: number) => Math.ceil(n / 4) * 4;
  const note = Buffer.alloc(12 + pad4(name.length) + pad4(desc.length));
  note.writeUInt32LE(name.length, 0);
  note.writeUInt32LE(desc.length, 4);
  note.writeUInt32LE(0, 8);
  name.copy(note, 12);
  desc.copy(note, 12 + pad4(name.length));
  const phnum = 3;
  const noteAt = 64 + 56 * phnum;
  const dataAt = Math.ceil((noteAt + note.length) / PAGE_SIZE) * PAGE_SIZE;
  const ram = BigInt(guest.memoryPages * PAGE_SIZE);
  const header = Buffer.alloc(dataAt);
  header.write('\x7fELF', 0, 'latin1');
  header[4] = 2; // ELFCLASS64
  header[5] = 1; // little endian
  header[6] = 1; // EV_CURRENT
  header.writeUInt16LE(4, 16); // ET_CORE
  header.writeUInt16LE(62, 18); // EM_X86_64
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(64n, 32); // e_phoff
  header.writeUInt16LE(64, 52); // e_ehsize
  header.writeUInt16LE(56, 54); // e_phentsize
  header.writeUInt16LE(phnum, 56);
  const phdr = (at: number, type: number, offset: number, vaddr: bigint, paddr: bigint, size: bigint) => {
    header.writeUInt32LE(type, at);
    header.writeUInt32LE(type === 1 ? 7 : 0, at + 4);
    header.writeBigUInt64LE(BigInt(offset), at + 8);
    header.writeBigUInt64LE(vaddr, at + 16);
    header.writeBigUInt64LE(paddr, at + 24);
    header.writeBigUInt64LE(size, at + 32);
    header.writeBigUInt64LE(size, at + 40);
  };
  phdr(64, 4, noteAt, 0n, 0n, BigInt(note.length)); // PT_NOTE
  phdr(64 + 56, 1, dataAt, pageOffsetBase, 0n, ram); // PT_LOAD: guest-physical 0… at the direct map
  phdr(64 + 112, 1, dataAt + Number(image.physical), image.virtual, image.physical, image.bytes); // PT_LOAD: the kernel image
  note.copy(header, noteAt);
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, header);
    const chunk = 4096; // pages per write
    for (let gfn = 0; gfn < guest.memoryPages; gfn += chunk) fs.writeSync(fd, guest.pages(gfn, Math.min(chunk, guest.memoryPages - gfn)));
  } finally {
    fs.closeSync(fd);
  }
}

/** The image kernel's DWARF vmlinux, from its -dbg package (downloaded once, kept in the cache). */
async function debugVmlinux(image: GuestImage): Promise<string> {
  const release = image.manifest.kernelRelease;
  const dir = path.join(cacheDir(), 'debug');
  const vmlinux = path.join(dir, `vmlinux-${release}`);
  if (fs.existsSync(vmlinux)) return vmlinux;
  fs.mkdirSync(dir, { recursive: true });
  const { package: name, version } = image.manifest.debugPackage;
  const deb = await downloadPackage({ name, version }, path.join(dir, 'debs'));
  // One member of a 1.75 GB tar stream, by the shell's pipe (dpkg-deb | tar, as debian-packages.ts does for small files).
  await execa('sh', [
    '-c',
    'dpkg-deb --fsys-tarfile "$1" | tar -x -O -f - "$2" > "$3"',
    'sh',
    deb,
    `./usr/lib/debug/boot/vmlinux-${release}`,
    `${vmlinux}.part`,
  ]);
  fs.renameSync(`${vmlinux}.part`, vmlinux);
  fs.rmSync(deb, { force: true }); // 283 MB: the vmlinux is what is needed
  return vmlinux;
}

const log = (line: string) => process.stderr.write(`[drgn] ${line}\n`);

describe.skipIf(drgnMissing)('page classes against drgn', () => {
  let backend: QemuBackend;
  let classes: PageClasses;
  let oracle: { kinds: string; files: Record<string, [number, number]> };
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-drgn-'));

  beforeAll(async () => {
    const image = await defaultImage();
    const kernel = kernelInfo(image);
    const vmlinux = await debugVmlinux(image);
    backend = await QemuBackend.create({ accelerator: 'auto' });
    const workload = { name: 'cowprobe' as const, params: { pages: 64, writes: 0, same: 0, delay_ms: 600_000, interval_ms: 500 } };
    const [guest] = await backend.provision(image, 1, { memoryMiB: MEMORY_MIB, kaslr: true, workload });
    await waitForCowprobe(guest!, 'ready', 60_000);
    await guest!.pause();
    const placement = locateKernelInMemory(guest!, kernel);
    classes = PageClassifier.open(guest!, kernel, placement, { cache: scratch }).classify();
    const memory = KernelMemory.open(guest!, kernel, placement);
    const core = path.join(scratch, 'core');
    const { layout } = kernel;
    writeCore(core, guest!, readVmcoreinfo(memory), memory.pageOffsetBase, {
      virtual: layout.text + placement.virtualOffset,
      physical: placement.physicalBase,
      bytes: layout.end - layout.text,
    });
    const started = Date.now();
    const { stdout } = await execa(PYTHON, [ORACLE, core, vmlinux, String(guest!.memoryPages)]);
    log(`drgn classified ${guest!.memoryPages} frames in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    oracle = JSON.parse(stdout);
    fs.rmSync(core, { force: true });
  }, 600_000);

  afterAll(async () => {
    await backend?.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('gives every frame the class drgn gives it', () => {
    expect(oracle.kinds).toHaveLength(classes.frames);
    const tally = new Map<string, number>();
    const differing: string[] = [];
    for (let frame = 0; frame < classes.frames; frame++) {
      const ours = letterOf(classes.kindOf(frame), classes.bits[frame]!);
      const theirs = oracle.kinds[frame]!;
      tally.set(theirs, (tally.get(theirs) ?? 0) + 1);
      if (ours !== theirs && differing.length < 10) differing.push(`frame 0x${frame.toString(16)}: xme ${classes.kindOf(frame)}, drgn ${theirs}`);
    }
    log(`drgn's classes: ${JSON.stringify(Object.fromEntries(tally))}`);
    expect(differing).toEqual([]);
    // The guest has each kind the comparison is about (else the test would prove little).
    for (const letter of ['f', 's', 'a', 'l', 't', 'r', 'o']) expect(tally.get(letter), letter).toBeGreaterThan(0);
  });

  it('gives every page-cache and shmem frame the inode number and page index drgn finds', () => {
    const files = Object.entries(oracle.files);
    expect(files.length).toBeGreaterThan(484); // busybox alone is 484 shmem pages
    for (const [at, [ino, index]] of files) {
      const info = classes.classOf(Number(at));
      if (info.kind !== 'pagecache' && info.kind !== 'shmem') throw new Error(`frame ${at}: drgn says a file page, xme says ${info.kind}`);
      expect([info.file.ino, info.index], `frame ${at}`).toEqual([ino, index]);
    }
  });
});
