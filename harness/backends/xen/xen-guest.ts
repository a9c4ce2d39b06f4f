/**
 * One Xen PVH domU created with `xl create`: its memory mapped read-only through xenforeignmemory, its
 * console read from xenconsoled's guest log.
 *
 * A foreign mapping is a snapshot of the domain's p2m: it maps the frames that backed the gfns when it was
 * made. When Xen unshares a page (the guest wrote it, or Xen read it for the guest), the gfn moves to a new
 * frame and the mapping keeps showing the old one — a re-read through it misses the write. So the one
 * long-lived mapping of all of guest memory exists only while the guest is paused (made on first use, dropped
 * when the last pause is lifted), and a read of a running guest copies its pages through a mapping made and
 * dropped at once. (Before, a mapping made while the guest ran outlived its writes: the cowprobe test's
 * content re-read saw those writes only because the pair's survivor had been written in place into the old
 * frame, and missed them when Xen copied the survivor too — 7 of 8, seen once with 2 emulated CPUs.)
 *
 * A foreign mapping also holds a reference on every page, and Xen refuses to nominate a page that has one
 * (E2BIG), so the backend releases the mapping before it shares. Buffers from pages() of a paused guest are
 * invalid after releaseMemory() or resume() — only the backend and the tick loop call them, between scans.
 */
import { execa } from 'execa';
import type { GuestImage } from '../../images/manifest.ts';
import type { DeviceWrite, Guest, VcpuAccess } from '../types.ts';
import type { GuestConsole } from '../../workloads/console-protocol.ts';
import { PAGE_SIZE } from '../../vocabulary.ts';
import { SerialConsole, waitForBootMarker } from '../serial-console.ts';
import type { ForeignMapping, ForeignMemory, XcInterface } from './libxen.ts';
import { readPhysical } from '../guest-memory.ts';
import { readVirtualByWalk, walkPageTables } from '../../arch/page-walk.ts';
import { XmeError } from '../../util/errors.ts';
import { describeDomainEnd } from './domain-end.ts';

export class XenGuest implements Guest {
  readonly memoryPages: number;
  bootMs = Number.NaN;
  private mapping: ForeignMapping | undefined;
  /** xl pauses nest: the guest runs only when every pause has been lifted. */
  private pauseDepth = 0;
  private readonly serial: SerialConsole;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly domid: number,
    readonly image: GuestImage,
    memoryMiB: number,
    readonly files: Readonly<Record<string, string>>,
    private readonly xc: XcInterface,
    private readonly fmem: ForeignMemory,
    private readonly startedAt: number,
  ) {
    this.memoryPages = memoryMiB * 256;
    this.serial = new SerialConsole(files.console!);
  }

  async waitForBoot(deadline: number): Promise<void> {
    await waitForBootMarker(this.serial, {
      label: `guest ${this.id} (domain ${this.name})`,
      log: this.files.console!,
      alive: () => this.alive(),
      whyGone: () => `the domain ended (${this.whyGone()})`,
      startedAt: this.startedAt,
      deadline,
      expectedRelease: this.image.manifest.kernelRelease,
      pollMs: 200,
    });
    this.bootMs = Date.now() - this.startedAt;
    this.serial.watch(); // progress lines stamped with host time as they arrive (serial-console.ts)
  }

  pages(firstGfn: number, count: number): Buffer {
    if (this.pauseDepth > 0) {
      this.mapping ??= this.fmem.mapRange(this.domid, this.memoryPages);
      return this.mapping.bytes(firstGfn, count);
    }
    // Running: any mapping kept would go stale at the next unshare (header), so copy through a fresh one.
    if (!Number.isInteger(firstGfn) || firstGfn < 0 || count < 1 || firstGfn + count > this.memoryPages) {
      throw new RangeError(`pages ${firstGfn}+${count} are outside guest ${this.id}'s ${this.memoryPages} pages`);
    }
    this.releaseMemory();
    const mapping = this.fmem.mapRange(this.domid, count, firstGfn);
    try {
      return Buffer.from(mapping.bytes(0, count));
    } finally {
      mapping.unmap();
    }
  }

  /** Through a writable foreign mapping of that one frame, dropped right after. */
  readonly deviceWrite: DeviceWrite = {
    writeMemory: async (gfn, offset, bytes) => {
      if (!Number.isInteger(gfn) || gfn < 0 || gfn >= this.memoryPages || offset < 0 || offset + bytes.length > PAGE_SIZE) {
        throw new RangeError(`write of ${bytes.length} bytes at gfn ${gfn}+${offset} is outside guest ${this.id}'s memory`);
      }
      const mapping = this.fmem.mapGfn(this.domid, gfn, { writable: true });
      try {
        bytes.copy(mapping.bytes(0, 1), offset);
      } finally {
        mapping.unmap();
        // A writable mapping unshares the page: its gfn now has a new frame, which a read mapping would not show.
        this.releaseMemory();
      }
    },
  };

  /** Drop the foreign mapping (so that pages can be nominated for sharing). */
  releaseMemory(): void {
    this.mapping?.unmap();
    this.mapping = undefined;
  }

  private readPhysical = (address: bigint, length: number): Buffer => readPhysical(this, address, length);

  /** vCPU 0's registers come from its HVM context; translation is a page walk over guest memory. */
  readonly vcpu: VcpuAccess = {
    translate: async (kernelVirtual) => walkPageTables(this.readPhysical, this.xc.vcpuRegisters(this.domid).cr3, kernelVirtual),
    idtBase: async () => this.xc.vcpuRegisters(this.domid).idtBase,
    readVirtual: async (address, length) => readVirtualByWalk(this.readPhysical, this.xc.vcpuRegisters(this.domid).cr3, address, length),
  };

  async pause(): Promise<void> {
    await this.xl('pause');
    this.pauseDepth++;
  }

  async resume(): Promise<void> {
    await this.xl('unpause');
    this.pauseDepth = Math.max(0, this.pauseDepth - 1);
    if (this.pauseDepth === 0) this.releaseMemory(); // it runs again: the mapping would go stale (header)
  }

  /** Run `xl <command> <name>`; if it fails because the domain is gone, say so and why, not xl's "invalid domain". */
  private async xl(command: string): Promise<void> {
    try {
      await execa('xl', [command, this.name]);
    } catch (error) {
      if (this.alive()) throw error;
      throw new XmeError(`guest ${this.id} (domain ${this.name}) is gone: it ended while the harness was using it (xl ${command} failed); ${this.whyGone()}`);
    }
  }

  /** Why the domain ended: xl's shutdown reason and the console's last lines (domain-end.ts). */
  whyGone(): string {
    return describeDomainEnd(this.files, this.consoleTail(40));
  }

  alive(): boolean {
    try {
      const info = this.xc.domains(this.domid, 1)[0];
      return info !== undefined && info.domid === this.domid && !info.dying;
    } catch {
      return false;
    }
  }

  /** Stop watching the console (the backend's teardown). */
  stopConsole(): void {
    this.serial.unwatch();
  }

  /** xenconsoled's guest log, followed by SerialConsole. */
  readonly console: GuestConsole = {
    progress: () => {
      this.serial.poll();
      return this.serial.progress;
    },
    lines: (prefix) => {
      this.serial.poll();
      return this.serial.matching(prefix);
    },
  };

  consoleTail(n = 5): string[] {
    this.serial.poll();
    return this.serial.tail(n);
  }
}
