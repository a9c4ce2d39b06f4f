/**
 * The Xen backend: identical PVH domUs created with `xl create` from the same guest image, and sharing that
 * is real — xc_memshr_nominate_gfn/xc_memshr_share_gfns back byte-verified pages by one frame, and the
 * hypervisor copies a page again when a guest writes it (a CoW fault, counted from shr_pages).
 * Runs in a Xen dom0 as root (see guest-images/xen.md and scripts/xen-testhost).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { XmeError, errorMessage } from '../../util/errors.ts';
import { requireTool } from '../../util/tools.ts';
import { onCleanup } from '../../util/cleanup.ts';
import type { GuestImage, KernelImage } from '../../images/manifest.ts';
import { ZERO_PAGE, type PageRef } from '../../vocabulary.ts';
import type { Backend, BackendInfo, FreeReclaimOutcome, Guest, HypervisorCounters, ProvisionOptions, ShareOutcome } from '../types.ts';
import { kernelCommandLine, perGuestWorkload } from '../guest-command-line.ts';
import { ForeignMemory, HVM_GET_MEM_TYPE, HypercallInterface, XcInterface, XenCallError, type ForeignMapping } from './libxen.ts';
import { XenGuest } from './xen-guest.ts';
import { xlLogDir } from './domain-end.ts';
import { FrameDomains, shareGroup, type NominatedPage } from './share-plan.ts';

/** Where xenconsoled writes guest consoles (xenconsoled --log=guest --log-dir=…). */
export function consoleLogDir(): string {
  return process.env.XME_XEN_CONSOLE_DIR ?? '/var/log/xen/console';
}

export function xlConfig(options: { name: string; kernel: string; ramdisk: string; cmdline: string; memoryMiB: number }): string {
  const quote = (value: string) => `"${value.replace(/["\\]/g, '')}"`;
  return [
    `name = ${quote(options.name)}`,
    'type = "pvh"',
    `kernel = ${quote(options.kernel)}`,
    `ramdisk = ${quote(options.ramdisk)}`,
    `cmdline = ${quote(options.cmdline)}`,
    `memory = ${options.memoryMiB}`,
    `maxmem = ${options.memoryMiB}`,
    'vcpus = 1',
    'on_poweroff = "destroy"',
    'on_crash = "destroy"',
    'on_reboot = "destroy"',
    '',
  ].join('\n');
}

export interface XenBackendOptions {
  onNotice?: (message: string) => void;
  /** Copy each guest's console log here when the backend closes (e.g. into results/<run-id>/logs/). */
  keepLogsIn?: string;
}

export class XenBackend implements Backend {
  readonly name = 'xen';
  readonly enforcesSharing = true;
  private readonly guests: XenGuest[] = [];
  private readonly sharingRings = new Map<XenGuest, { mapping: ForeignMapping; ringGfn: number; port: number }>();
  /** Which domains each shared frame may back, across ticks (share-plan.ts: keeps Xen's lock order safe). */
  private readonly frameDomains = new FrameDomains();
  /** The frame free frames are backed by (reclaimFree): a gfn whose bytes were zero when it was nominated. */
  private zeroFrame: { guest: XenGuest; gfn: number } | undefined;
  /** Raw hypercalls (the p2m type query of sharedGfns), opened on first use. */
  private hypercalls: HypercallInterface | undefined;
  private dir: string | undefined;
  private closing: Promise<void> | undefined;
  private unregisterCleanup: (() => void) | undefined;

  private constructor(
    private readonly xc: XcInterface,
    private readonly fmem: ForeignMemory,
    private readonly hypervisor: string,
    private readonly options: XenBackendOptions,
  ) {}

  /** Throws a clear error unless this is a Xen dom0 with the xl tool. */
  static checkHost(): void {
    if (!fs.existsSync('/dev/xen/privcmd')) {
      throw new XmeError('the Xen backend needs a Xen dom0 (/dev/xen/privcmd is missing)', 'run xme in dom0 as root, or use the QEMU backend (the default)');
    }
    requireTool('xl');
  }

  static async create(options: XenBackendOptions = {}): Promise<XenBackend> {
    XenBackend.checkHost();
    const xc = XcInterface.open();
    let fmem: ForeignMemory;
    try {
      fmem = ForeignMemory.open();
    } catch (error) {
      xc.close();
      throw error;
    }
    return new XenBackend(xc, fmem, xc.hypervisorVersion(), options);
  }

  info(): BackendInfo {
    return {
      name: this.name,
      version: `Xen ${this.hypervisor} (${this.xc.soname})`,
      accelerator: 'xen-pvh',
      acceleratorReason: 'PVH domUs with HAP; sharing enforced by the hypervisor',
      cpuModel: 'host',
    };
  }

  async provision(image: GuestImage, count: number, options: ProvisionOptions): Promise<Guest[]> {
    if (this.closing) throw new Error('backend is closed');
    if (image.kind === 'system') {
      throw new XmeError(`the Xen backend boots kernel images only, not the system image '${image.name}'`, 'run system images on the qemu backend');
    }
    const kernelImage = image;
    this.dir ??= fs.mkdtempSync(path.join(os.tmpdir(), `xme-${process.pid}-`));
    this.unregisterCleanup ??= onCleanup({ name: `Xen domains of xme ${process.pid}`, run: () => this.close(), runSync: () => this.destroyAllSync() });
    const started: XenGuest[] = [];
    // Generous by default: under nested emulation (the Xen test host, one emulated CPU shared with dom0) a
    // loaded host took over 90 s for one PVH domU to print its marker. A guest that dies is noticed at once
    // (it vanishes), so a long deadline only costs time when a boot hangs.
    const deadline = Date.now() + (options.bootTimeoutMs ?? 120_000 + 120_000 * count);
    for (let i = 0; i < count; i++) {
      const index = this.guests.length;
      started.push(await this.startGuest(kernelImage, index, options, deadline));
    }
    return started;
  }

  /**
   * Create one domU, wait for its boot marker and enable sharing for it. Under nested TCG (the Xen test host)
   * a PVH guest kernel occasionally dies in or right after boot (triple faults in native_calibrate_cpu_early
   * and in the workload were seen); such a guest is destroyed and created again, at most twice, and the retry
   * is reported as a notice.
   */
  private async startGuest(image: KernelImage, index: number, options: ProvisionOptions, deadline: number): Promise<XenGuest> {
    const id = `g${index}`;
    const name = `xme-${process.pid}-${id}`;
    const config = path.join(this.dir!, `${id}.cfg`);
    const cmdline = kernelCommandLine({ kaslr: options.kaslr, workload: perGuestWorkload(options.workload, index) }, 'hvc0');
    fs.writeFileSync(config, xlConfig({ name, kernel: image.path('vmlinuz'), ramdisk: image.path('initramfs'), cmdline, memoryMiB: options.memoryMiB }));
    const console = path.join(consoleLogDir(), `guest-${name}.log`);
    const xlLog = path.join(xlLogDir(), `xl-${name}.log`);
    for (let attempt = 1; ; attempt++) {
      fs.rmSync(console, { force: true });
      fs.rmSync(xlLog, { force: true }); // a re-created guest's log must not show the last attempt's end
      const startedAt = Date.now();
      const created = await execa('xl', ['create', config], { reject: false });
      if (created.exitCode !== 0) throw new XmeError(`xl create ${name} failed: ${created.stderr.trim().split('\n').pop()}`);
      const domid = await execa('xl', ['domid', name], { reject: false });
      const guest =
        Number.isInteger(Number(domid.stdout.trim())) && domid.exitCode === 0
          ? new XenGuest(id, name, Number(domid.stdout.trim()), image, options.memoryMiB, { config, console, xlLog }, this.xc, this.fmem, startedAt)
          : undefined;
      if (guest) this.guests.push(guest);
      try {
        if (!guest) throw new XmeError(`domain ${name} vanished right after xl create`);
        await guest.waitForBoot(deadline);
        // Inside the retry: a guest that dies right after its marker fails here (ESRCH) and is created again.
        this.xc.memshrControl(guest.domid, true);
        this.watchSharingRing(guest);
        options.onGuestBooted?.(guest, guest.bootMs);
        return guest;
      } catch (error) {
        if (guest?.alive() || attempt >= 3 || Date.now() > deadline) throw error;
        this.notice(`${name} died while booting (attempt ${attempt}: ${errorMessage(error)}); creating it again`);
        if (guest) {
          this.sharingRings.get(guest)?.mapping.unmap();
          this.sharingRings.delete(guest);
          this.guests.splice(this.guests.indexOf(guest), 1);
        }
        await execa('xl', ['destroy', name], { reject: false });
      }
    }
  }

  /**
   * Share byte-verified groups, in the order Xen needs: drop the foreign mappings (a mapped page cannot be
   * nominated), nominate every page, compare the bytes once more (a write after nomination would make the
   * share fail, but a write between the caller's check and the nomination would not), then share.
   * xc_memshr_share_gfns itself never compares contents.
   */
  async share(guests: readonly Guest[], groups: PageRef[][]): Promise<ShareOutcome> {
    const outcome: ShareOutcome = { shared: [], failed: [], hypercalls: 0 };
    const xenGuests = guests.map((guest) => {
      const own = this.own(guest);
      if (!own) throw new Error(`guest ${guest.id} is not a Xen guest`);
      return own;
    });
    for (const guest of xenGuests) guest.releaseMemory();
    const errorText = (error: unknown) => (error instanceof XenCallError ? error.message : String(error));
    // The p2m entries of these guests change under them: keep their vCPUs descheduled meanwhile (pauses
    // nest, so a runner that already paused them is not disturbed). Under nested TCG a guest that ran
    // while its pages were being shared was seen to triple-fault.
    await Promise.all(xenGuests.map((guest) => guest.pause()));
    try {
      return this.shareWhilePaused(xenGuests, groups, outcome, errorText);
    } finally {
      await Promise.all(xenGuests.filter((guest) => guest.alive()).map((guest) => guest.resume()));
    }
  }

  private shareWhilePaused(xenGuests: XenGuest[], groups: PageRef[][], outcome: ShareOutcome, errorText: (error: unknown) => string): ShareOutcome {
    // 1. Nominate.
    const nominated: NominatedPage[][] = [];
    for (const group of groups) {
      const members: NominatedPage[] = [];
      for (const ref of group) {
        try {
          outcome.hypercalls++;
          const domid = xenGuests[ref.guest]!.domid;
          const page: NominatedPage = { ref, domid, handle: this.xc.nominate(domid, ref.gfn) };
          this.frameDomains.nominated(page);
          members.push(page);
        } catch (error) {
          outcome.failed.push({ pages: [ref], reason: errorText(error) });
        }
      }
      if (members.length >= 2) nominated.push(members);
    }
    // 2. Compare again, through a fresh mapping, then release it before sharing.
    const confirmed = nominated.map((members) => {
      const [source, ...clients] = members;
      const reference = Buffer.from(xenGuests[source!.ref.guest]!.pages(source!.ref.gfn, 1));
      const same = clients.filter((client) => {
        const equal = xenGuests[client.ref.guest]!.pages(client.ref.gfn, 1).equals(reference);
        if (!equal) outcome.failed.push({ pages: [client.ref], reason: 'bytes changed after nomination' });
        return equal;
      });
      return [source!, ...same];
    });
    for (const guest of xenGuests) guest.releaseMemory();
    // 3. Share each group into one frame, only in pairs Xen can merge safely (share-plan.ts says why).
    const share = (source: NominatedPage, client: NominatedPage) =>
      this.xc.share(source.domid, source.ref.gfn, source.handle, client.domid, client.ref.gfn, client.handle);
    for (const members of confirmed) {
      if (members.length < 2) continue;
      const result = shareGroup(members, this.frameDomains, share, errorText);
      outcome.hypercalls += result.calls;
      outcome.failed.push(...result.failed);
      if (result.shared.length > 1) outcome.shared.push(result.shared);
    }
    return outcome;
  }

  /**
   * Back free frames by one zero frame, as Chiang et al. (VEE'13) do: nominate each and share it into a frame
   * whose bytes are zero — xc_memshr_share_gfns does not compare bytes, and here that is the point (the one
   * exception, sharing/ledger.ts "FREE PAGES RECLAIMED"). The caller proposes only frames the page classes
   * found free while these guests were paused, and they stay paused until every share is made, so no guest
   * can allocate one in between; a write after the resume is an unshare (a reclaim fault), the guest's own
   * copy of zeros. The zero frame is the last one used while Xen still shares it and its bytes still read
   * zero, else the first proposed frame whose bytes read zero before and after its nomination.
   */
  async reclaimFree(guests: readonly Guest[], frames: readonly (readonly number[])[]): Promise<FreeReclaimOutcome> {
    const outcome: FreeReclaimOutcome = { backed: [], zeroFrame: undefined, failed: [], hypercalls: 0 };
    const xenGuests = guests.map((guest) => {
      const own = this.own(guest);
      if (!own) throw new Error(`guest ${guest.id} is not a Xen guest`);
      return own;
    });
    if (frames.length !== xenGuests.length) throw new RangeError(`reclaimFree: free frames of ${frames.length} guests for ${xenGuests.length} guests`);
    await Promise.all(xenGuests.map((guest) => guest.pause()));
    try {
      return this.reclaimWhilePaused(xenGuests, frames, outcome);
    } finally {
      for (const guest of xenGuests) guest.releaseMemory();
      await Promise.all(xenGuests.filter((guest) => guest.alive()).map((guest) => guest.resume()));
    }
  }

  private reclaimWhilePaused(xenGuests: XenGuest[], frames: readonly (readonly number[])[], outcome: FreeReclaimOutcome): FreeReclaimOutcome {
    const errorText = (error: unknown) => (error instanceof XenCallError ? error.message : String(error));
    // A mapped page cannot be nominated (E2BIG): the classification mapped every guest's memory.
    for (const guest of xenGuests) guest.releaseMemory();
    const source = this.nominateZeroFrame(xenGuests, frames, outcome, errorText);
    if (!source) {
      const pages = frames.flatMap((gfns, guest) => gfns.map((gfn) => ({ guest, gfn })));
      if (pages.length) outcome.failed.push({ pages, reason: 'no free frame read zero to back the free frames with' });
      return outcome;
    }
    outcome.zeroFrame = source.handle;
    const members: NominatedPage[] = [source];
    frames.forEach((gfns, g) => {
      const domid = xenGuests[g]!.domid;
      for (const gfn of gfns) {
        if (g === source.ref.guest && gfn === source.ref.gfn) continue;
        try {
          outcome.hypercalls++;
          const page: NominatedPage = { ref: { guest: g, gfn }, domid, handle: this.xc.nominate(domid, gfn) };
          this.frameDomains.nominated(page);
          members.push(page);
        } catch (error) {
          outcome.failed.push({ pages: [{ guest: g, gfn }], reason: errorText(error) });
        }
      }
    });
    for (const guest of xenGuests) guest.releaseMemory();
    const share = (into: NominatedPage, client: NominatedPage) =>
      this.xc.share(into.domid, into.ref.gfn, into.handle, client.domid, client.ref.gfn, client.handle);
    const result = shareGroup(members, this.frameDomains, share, errorText);
    outcome.hypercalls += result.calls;
    outcome.failed.push(...result.failed);
    outcome.backed = result.shared;
    this.zeroFrame = { guest: xenGuests[source.ref.guest]!, gfn: source.ref.gfn };
    return outcome;
  }

  /** The zero frame, nominated (see reclaimFree), or undefined when no candidate reads zero. */
  private nominateZeroFrame(
    xenGuests: XenGuest[],
    frames: readonly (readonly number[])[],
    outcome: FreeReclaimOutcome,
    errorText: (error: unknown) => string,
  ): NominatedPage | undefined {
    const candidates: { guest: number; gfn: number }[] = [];
    const last = this.zeroFrame;
    const lastIndex = last ? xenGuests.indexOf(last.guest) : -1;
    if (last && lastIndex >= 0 && this.sharedGfns(last.guest, [last.gfn])[0] === 1) candidates.push({ guest: lastIndex, gfn: last.gfn });
    // A few tries among the proposed frames: most free frames of a guest read zero (FACTS: 129,868 of 178,062).
    frames.forEach((gfns, guest) => {
      for (const gfn of gfns.slice(0, 16)) candidates.push({ guest, gfn });
    });
    for (const candidate of candidates) {
      const guest = xenGuests[candidate.guest]!;
      if (!guest.pages(candidate.gfn, 1).equals(ZERO_PAGE)) continue;
      guest.releaseMemory();
      let handle: bigint;
      try {
        outcome.hypercalls++;
        handle = this.xc.nominate(guest.domid, candidate.gfn);
      } catch (error) {
        outcome.failed.push({ pages: [candidate], reason: errorText(error) });
        continue;
      }
      // Nominated, the page is read-only to the guest (which is paused anyway): its bytes are now fixed.
      const zero = guest.pages(candidate.gfn, 1).equals(ZERO_PAGE);
      guest.releaseMemory();
      if (!zero) continue;
      const page: NominatedPage = { ref: candidate, domid: guest.domid, handle };
      this.frameDomains.nominated(page);
      return page;
    }
    return undefined;
  }

  /** Per gfn, 1 while Xen backs it by a shared frame (its p2m type, HVMOP_get_mem_type: no unshare, no allocation). */
  sharedGfns(guest: Guest, gfns: readonly number[]): Uint8Array {
    const own = this.own(guest);
    if (!own) throw new Error(`guest ${guest.id} is not a Xen guest`);
    this.hypercalls ??= HypercallInterface.open();
    const shared = new Uint8Array(gfns.length);
    for (let i = 0; i < gfns.length; i++) shared[i] = this.hypercalls.memType(own.domid, gfns[i]!) === HVM_GET_MEM_TYPE.ramRo ? 1 : 0;
    return shared;
  }

  /**
   * The ENOMEM ring: Xen crashes a domain that cannot get a frame for a CoW copy unless the domain has a
   * sharing ring; with one, the faulting vCPU waits and a request is posted. xme does not add memory, so a
   * posted request ends the run with a clear error (checked with every counters() call) instead of a domain
   * that silently died.
   */
  private watchSharingRing(guest: XenGuest): void {
    try {
      const { ringGfn, port } = this.xc.enableSharingRing(guest.domid);
      this.sharingRings.set(guest, { mapping: this.fmem.mapGfn(guest.domid, ringGfn), ringGfn, port });
    } catch (error) {
      this.notice(`${guest.name}: no ENOMEM ring for memory sharing (${errorMessage(error)}); a CoW copy that finds no free frame will crash this domain`);
    }
  }

  /** Requests posted on a guest's sharing ring (each: a vCPU that found no frame to unshare into). */
  private enomemRequests(guest: XenGuest): number {
    const ring = this.sharingRings.get(guest);
    // struct vm_event_sring starts with RING_IDX req_prod (uint32): requests ever posted.
    return ring ? ring.mapping.bytes(0, 1).readUInt32LE(0) : 0;
  }

  /** This backend's own guest behind a seam Guest (the runner hands back the guests provision() gave it). */
  private own(guest: Guest): XenGuest | undefined {
    return this.guests.find((mine) => mine === guest);
  }

  private notice(message: string): void {
    if (this.options.onNotice) this.options.onNotice(message);
    // Printed too: tests and CI logs must show every recreation and missing safety net, not only run.json.
    process.stderr.write(`xme xen: ${message}\n`);
  }

  async counters(guests: readonly Guest[]): Promise<HypervisorCounters> {
    for (const guest of guests.map((g) => this.own(g))) {
      if (!guest) continue;
      const requests = this.enomemRequests(guest);
      if (requests > 0) {
        throw new XmeError(
          `${guest.name} ran out of memory while unsharing a page (${requests} ENOMEM request(s) on its sharing ring; its vCPU is paused)`,
          'give the host more free memory than the guests could unshare (Σ shr_pages), or share less',
        );
      }
    }
    const { freedPages, usedFrames } = this.xc.sharingCounters();
    return {
      sharedPagesPerGuest: guests.map((guest) => {
        const own = this.own(guest);
        return own ? this.xc.domain(own.domid).shrPages : 0;
      }),
      freedFrames: freedPages,
      usedFrames,
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.options.keepLogsIn) {
        fs.mkdirSync(this.options.keepLogsIn, { recursive: true });
        for (const guest of this.guests) {
          try {
            fs.copyFileSync(guest.files.console!, path.join(this.options.keepLogsIn, `${guest.id}.console.log`));
          } catch {
            // no console output was logged for this guest
          }
        }
      }
      for (const guest of this.guests) {
        guest.stopConsole();
        guest.releaseMemory();
        const ring = this.sharingRings.get(guest);
        if (ring) {
          ring.mapping.unmap();
          try {
            this.xc.disableSharingRing(guest.domid);
          } catch {
            // the domain may already be gone
          }
        }
        try {
          this.xc.memshrControl(guest.domid, false);
        } catch {
          // the domain may already be gone
        }
        await execa('xl', ['destroy', guest.name], { reject: false });
      }
      this.fmem.close();
      this.hypercalls?.close();
      this.xc.close();
      if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
      this.unregisterCleanup?.();
    })();
    return this.closing;
  }

  private destroyAllSync(): void {
    for (const guest of this.guests) {
      try {
        execFileSync('xl', ['destroy', guest.name], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
