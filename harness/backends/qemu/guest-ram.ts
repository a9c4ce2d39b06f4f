/**
 * Where a QEMU guest's RAM lives on the host, and how the harness reads it. Two kinds:
 * - 'shared-file' (default): a tmpfs file QEMU maps shared (memory-backend-file, share=on). The harness maps
 *   the same file and reads pages without copies. The kernel never merges it (KSM only merges anonymous
 *   private memory), so sharing there is accounted by the ledger, not done.
 * - 'anonymous-mergeable': QEMU's own anonymous RAM marked MADV_MERGEABLE (memory-backend-ram, merge=on), for
 *   runs where Linux KSM really merges guest pages. The harness reads it from outside the QEMU process with
 *   pread(2) on /proc/<pid>/mem (a copy; reading never unmerges a KSM page) and tells which host frame backs
 *   each page from pagemap. Pages the guest never touched are not present and are never read: on this host's
 *   kernel a read fault allocates a page rather than mapping the zero page, so reading them would cost the
 *   host memory (residency marks them 0; resident-pages.ts skips them).
 */
import fs from 'node:fs';
import type { GuestRamKind } from '../types.ts';
import { PAGE_SIZE } from '../../vocabulary.ts';
import { XmeError } from '../../util/errors.ts';
import { MappedFile } from './mapped-file.ts';
import { residentPages } from './residency.ts';
import { FrameFlags, openProc, readPageFrames, residencyFromFrames } from '../../host/page-frames.ts';

export interface GuestRam {
  readonly kind: GuestRamKind;
  readonly bytes: number;
  /** Pages [first, first + count): a live view (shared-file) or a fresh copy (anonymous-mergeable). */
  pages(firstGfn: number, count: number): Buffer;
  /** Store bytes into guest memory, as a device would (the guest sees them at once). */
  write(gfn: number, offset: number, bytes: Buffer): Promise<void>;
  /** 1 = a host frame of its own backs the page; 0 = it costs the host nothing (hole / zero page). */
  residentPages(): Uint8Array;
  /** See Guest.copyForTick: only RAM that is read by copying needs it. */
  copyForTick?(residency: Uint8Array): void;
  dropTickCopy?(): void;
  close(): void;
}

function checkRange(firstGfn: number, count: number, pageCount: number): void {
  if (!Number.isInteger(firstGfn) || !Number.isInteger(count) || firstGfn < 0 || count < 0 || firstGfn + count > pageCount) {
    throw new RangeError(`pages ${firstGfn}+${count} are outside guest memory of ${pageCount} pages`);
  }
}

/** Guest RAM in a tmpfs file shared with QEMU. */
export class SharedFileRam implements GuestRam {
  readonly kind = 'shared-file';
  private constructor(
    private readonly file: string,
    private readonly mapping: MappedFile,
  ) {}

  get bytes(): number {
    return this.mapping.bytes;
  }

  /** Create the file (0600: created here, not by QEMU, whatever QEMU's umask is) and map it. */
  static create(file: string, bytes: number): SharedFileRam {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      fs.ftruncateSync(fd, bytes);
    } finally {
      fs.closeSync(fd);
    }
    return new SharedFileRam(file, MappedFile.open(file, bytes));
  }

  pages(firstGfn: number, count: number): Buffer {
    return this.mapping.pages(firstGfn, count);
  }

  async write(gfn: number, offset: number, bytes: Buffer): Promise<void> {
    const fd = await fs.promises.open(this.file, 'r+');
    try {
      await fd.write(bytes, 0, bytes.length, gfn * PAGE_SIZE + offset);
    } finally {
      await fd.close();
    }
  }

  /** Pages allocated in the RAM file (mincore on a fresh, untouched mapping: ≈ 3 ms per 256 MiB). */
  residentPages(): Uint8Array {
    return residentPages(this.file, this.bytes / PAGE_SIZE, { method: 'mincore' }).map;
  }

  close(): void {
    this.mapping.close();
  }
}

/** Anonymous guest RAM inside the QEMU process, at host virtual `address` (from QEMU's gpa2hva). */
export class ProcessRam implements GuestRam {
  readonly kind = 'anonymous-mergeable';
  private memFd: number | undefined;
  private pagemapFd: number | undefined;
  private readonly flags = new FrameFlags();
  /** The buffer copyForTick fills (kept between ticks: allocating 256 MiB each tick would cost more). */
  private copy: Buffer | undefined;
  /** Set while the tick's copy is valid (guests paused). */
  private tickCopy: Buffer | undefined;
  private copiedResidency: Uint8Array | undefined;

  constructor(
    readonly pid: number,
    readonly address: number,
    readonly bytes: number,
  ) {
    if (!Number.isSafeInteger(address) || address % PAGE_SIZE !== 0)
      throw new XmeError(`guest RAM address 0x${address.toString(16)} is not a page-aligned address`);
    this.memFd = openProc(`/proc/${pid}/mem`);
    this.pagemapFd = openProc(`/proc/${pid}/pagemap`);
  }

  private get pageCount(): number {
    return this.bytes / PAGE_SIZE;
  }

  private fd(): number {
    if (this.memFd === undefined) throw new XmeError(`guest memory of QEMU ${this.pid} is closed`);
    return this.memFd;
  }

  pages(firstGfn: number, count: number): Buffer {
    checkRange(firstGfn, count, this.pageCount);
    if (this.tickCopy) return this.tickCopy.subarray(firstGfn * PAGE_SIZE, (firstGfn + count) * PAGE_SIZE);
    const buffer = Buffer.allocUnsafe(count * PAGE_SIZE);
    this.readInto(firstGfn, count, buffer, 0);
    return buffer;
  }

  /**
   * Pages [firstGfn, firstGfn + count) into target at offset (pread from /proc/<pid>/mem). Not
   * process_vm_readv, though it copies once where this copies twice: it pins the pages (FOLL_PIN), and a
   * read-only pin of a KSM page must unshare it first — the harness would unmerge what KSM merged
   * (ksm-peer.e2e.test.ts caught it). /proc/<pid>/mem reads without pinning and unmerges nothing.
   */
  readInto(firstGfn: number, count: number, target: Buffer, offset: number): void {
    checkRange(firstGfn, count, this.pageCount);
    const bytes = count * PAGE_SIZE;
    if (offset < 0 || offset + bytes > target.length) throw new RangeError(`${bytes} bytes do not fit at offset ${offset} of a buffer of ${target.length}`);
    let done = 0;
    while (done < bytes) {
      const read = fs.readSync(this.fd(), target, offset + done, bytes - done, this.address + firstGfn * PAGE_SIZE + done);
      if (read <= 0) throw new XmeError(`cannot read guest memory of QEMU ${this.pid} at page ${firstGfn} (the process may have ended)`);
      done += read;
    }
  }

  /**
   * One copy of guest RAM for this tick (the guests are paused): every resident page read once, in runs of
   * up to 1 MiB (≈ 2.5 M pages per CPU-second here, against ≈ 0.25 M for a pread per page), pages that are
   * not resident left zero (never read: that would allocate them). Until dropTickCopy(), pages() serves
   * views of it, so strategies and ledgers read memory as cheaply as from the mapped RAM file of the default
   * path, and what the copy costs is the harness's, measured apart (tick-loop.ts), not any strategy's.
   */
  copyForTick(residency: Uint8Array): void {
    this.copy ??= Buffer.alloc(this.bytes);
    const copy = this.copy;
    const previous = this.copiedResidency;
    const RUN = 256;
    let gfn = 0;
    while (gfn < this.pageCount) {
      if (residency[gfn] === 0) {
        // Resident at the previous copy, not now (unmapped or merged into the zero page): zeros now.
        if (previous?.[gfn] === 1) copy.fill(0, gfn * PAGE_SIZE, (gfn + 1) * PAGE_SIZE);
        gfn++;
        continue;
      }
      let end = gfn + 1;
      while (end < this.pageCount && end - gfn < RUN && residency[end] !== 0) end++;
      this.readInto(gfn, end - gfn, copy, gfn * PAGE_SIZE);
      gfn = end;
    }
    this.copiedResidency = residency.slice();
    this.tickCopy = copy;
  }

  /** True between copyForTick() and dropTickCopy(). */
  get hasTickCopy(): boolean {
    return this.tickCopy !== undefined;
  }

  dropTickCopy(): void {
    this.tickCopy = undefined;
  }

  async write(gfn: number, offset: number, bytes: Buffer): Promise<void> {
    checkRange(gfn, 1, this.pageCount);
    // /proc/<pid>/mem opened read-only for reads; a write (rare: test doorbells) opens its own descriptor.
    const handle = await fs.promises.open(`/proc/${this.pid}/mem`, 'r+');
    try {
      await handle.write(bytes, 0, bytes.length, this.address + gfn * PAGE_SIZE + offset);
    } finally {
      await handle.close();
    }
  }

  /** PFN per page, NOT_PRESENT where none (page-frames.ts): what KSM's observer reads. */
  frames(): Float64Array {
    if (this.pagemapFd === undefined) throw new XmeError(`guest memory of QEMU ${this.pid} is closed`);
    return readPageFrames(this.pid, this.address, this.pageCount, this.pagemapFd);
  }

  residentPages(): Uint8Array {
    return residencyFromFrames(this.frames(), this.flags);
  }

  close(): void {
    this.tickCopy = undefined;
    this.copy = undefined;
    for (const fd of [this.memFd, this.pagemapFd]) if (fd !== undefined) fs.closeSync(fd);
    this.memFd = undefined;
    this.pagemapFd = undefined;
    this.flags.close();
  }
}
