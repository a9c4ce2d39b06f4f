/**
 * The seams between the engine and a hypervisor. A backend knows how to start identical guests and how to
 * reach their memory; it knows nothing about sharing strategies (see docs/architecture.md).
 */
import type { GuestImage } from '../images/manifest.ts';
import { PAGE_SIZE, WORKLOAD_PARAMS, WORKLOADS, type PageRef, type WorkloadName, type WorkloadParam, type WorkloadSpec } from '../vocabulary.ts';

// The basic words live in harness/vocabulary.ts; handed on here for the rooms that already import them from the seam.
export { PAGE_SIZE, WORKLOAD_PARAMS, WORKLOADS };
export type { PageRef, WorkloadName, WorkloadParam, WorkloadSpec };

/**
 * Where guest RAM lives on the host: 'shared-file' (default; a tmpfs file the harness maps, never merged by
 * the host kernel) or 'anonymous-mergeable' (the hypervisor process's anonymous memory, marked for Linux KSM).
 */
export type GuestRamKind = 'shared-file' | 'anonymous-mergeable';

/** Anonymous guest RAM inside a host process: what a host-side merger (KSM) and its observer look at. */
export interface HostProcessMemory {
  pid: number;
  /** Host virtual address of guest-physical address 0 (RAM is contiguous from there for the whole size). */
  address: number;
  bytes: number;
}

export interface ProvisionOptions {
  memoryMiB: number;
  /** Backends that cannot place RAM as asked refuse (see GuestRamKind). Default 'shared-file'. */
  guestRam?: GuestRamKind;
  /**
   * The CPU model of each guest (guest i gets cpuModels[i % length]); default the backend's one model. Boot-time
   * code patching (alternatives) depends on the CPU, so kernel code differs between guests on different models.
   */
  cpuModels?: readonly string[];
  workload: WorkloadSpec;
  /** false → `nokaslr` on the kernel command line (identical kernel layout in every guest). */
  kaslr: boolean;
  /** How long to wait for every guest's boot marker. */
  bootTimeoutMs?: number;
  /** Told about each guest as it boots (for progress output). */
  onGuestBooted?: (guest: Guest, bootMs: number) => void;
}

/** One progress line of the guest's workload: cumulative ops at a guest time. */
export interface WorkloadProgress {
  /** Guest time (CLOCK_MONOTONIC in the guest): it stops while the guest is paused. */
  tMs: number;
  ops: number;
  /** Host time (Date.now()) when the harness read the line, where the console is watched (±100 ms). */
  hostMs?: number;
}

export interface Guest {
  /** Stable within a run: "g0", "g1", … */
  readonly id: string;
  readonly memoryPages: number;
  readonly image: GuestImage;
  /** A view of guest-physical pages [firstGfn, firstGfn+count). Zero-copy where the backend can. */
  pages(firstGfn: number, count: number): Buffer;
  /**
   * All of guest RAM as one live, zero-copy view whose address does not move until teardown, where the backend
   * maps it (QEMU shared-file RAM, test guests); undefined or absent where pages() copies. Lets native code
   * compare pages in place. Like pages(), it must not be read at a page the residency marks 0.
   */
  memoryView?(): Buffer | undefined;
  /**
   * Where pages() copies (anonymous RAM): read pages [firstGfn, firstGfn+count) into `target` at `offset`
   * instead of a fresh Buffer, so that a scan reuses one buffer (a fresh one costs a page fault per page).
   * Same rule: never at a page the residency marks 0.
   */
  readPagesInto?(firstGfn: number, count: number, target: Buffer, offset: number): void;
  /**
   * Whether the hypervisor can tell this guest's vCPU state (registers, page-table walks): the "hypervisor
   * route" to the kernel's placement. When false, translate/idtBase/readVirtual reject and strategies use
   * the memory-only route.
   */
  readonly canIntrospectVcpu: boolean;
  /** Guest-physical address of a kernel virtual address, asked of the hypervisor. */
  translate(kernelVirtual: bigint): Promise<bigint>;
  /** vCPU 0's IDT base (a kernel virtual address), asked of the hypervisor. */
  idtBase(): Promise<bigint>;
  /** Bytes at a kernel virtual address, through the hypervisor's view of the vCPU's page tables. */
  readVirtual(address: bigint, length: number): Promise<Buffer>;
  /**
   * Store bytes into one guest page (within it), as a device would: for test workloads that wait to be told
   * (the cowprobe doorbell). Never used by strategies or ledgers. Absent where the backend cannot write.
   */
  writeMemory?(gfn: number, offset: number, bytes: Buffer): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  alive(): boolean;
  /** Workload progress lines seen so far on the serial console. */
  progress(): WorkloadProgress[];
  /**
   * Every console line seen so far that contains `prefix`, in order, each from the prefix on (a timestamp,
   * kernel text or CR before it is dropped). Lines with an "XME-" marker are all kept (not only the last 200),
   * so an XME-* prefix (e.g. "XME-COWPROBE", "XME-ERROR") gives the full list; other prefixes only see the
   * recent lines.
   */
  consoleLines(prefix: string): string[];
  /**
   * Which guest pages the host really backs right now (1) and which cost it nothing (0: never touched, a
   * hole in the RAM file; such a page is all zeros). Undefined / absent where every page is backed (Xen
   * populates a domain's whole memory). Callers must not read a 0 page through pages(): on tmpfs a read
   * fault allocates it, so the harness itself would make the host back it.
   */
  hostResidentPages?(): Uint8Array;
  /**
   * Backends that can only read guest RAM by copying it (QEMU's anonymous RAM, from outside the process) take
   * one copy of the resident pages here, once per tick while the guests are paused; pages() then serves views
   * of it until dropTickCopy(). Absent where pages() is already a view of guest memory.
   */
  copyForTick?(residency: Uint8Array | undefined): void;
  dropTickCopy?(): void;
  /** Set where guest RAM is anonymous memory of a host process that the host kernel may merge (KSM). */
  hostProcessMemory?(): HostProcessMemory | undefined;
  /** Files a person may want to look at (serial log, memory file, monitor socket). */
  readonly files: Readonly<Record<string, string>>;
  /** How long from process start to the boot marker. */
  readonly bootMs: number;
}

export interface BackendInfo {
  name: string;
  /** e.g. "QEMU 7.2.22" */
  version: string;
  /** e.g. "tcg" or "kvm", and why */
  accelerator: string;
  acceleratorReason: string;
  cpuModel: string;
}

/** What the hypervisor did with byte-verified groups (enforcing backends only). */
export interface ShareOutcome {
  /** Groups now backed by one frame (each may be a subset of what was asked). */
  shared: PageRef[][];
  /** Pages the hypervisor refused, with the errno or reason. */
  failed: { pages: PageRef[]; reason: string }[];
  hypercalls: number;
}

/** The hypervisor's own sharing counters. */
export interface HypervisorCounters {
  /** Per guest (same order as the guests): pages backed by a shared frame (Xen: shr_pages). */
  sharedPagesPerGuest: number[];
  /** Host-wide frames freed by sharing and frames in use as shared (Xen: xc_sharing_*). */
  freedFrames: number;
  usedFrames: number;
}

/**
 * The ticks a replaying backend dictates (harness/recording/): the recorded tick numbers and times, and how to
 * put the recorded memory of tick `index` into the guests before it is scored. No clock, no sleeping.
 */
export interface ReplaySchedule {
  ticks: readonly { tick: number; tS: number }[];
  enter(index: number): void;
}

export interface Backend {
  readonly name: string;
  /** true where the hypervisor really merges pages (Xen); false where sharing is accounted (QEMU). */
  readonly enforcesSharing: boolean;
  /** Boot `count` identical guests from one image, each running the workload; all booted when it resolves. */
  provision(image: GuestImage, count: number, options: ProvisionOptions): Promise<Guest[]>;
  info(): BackendInfo;
  /** Enforcing backends: back each group by one frame. Callers verify the bytes first (the hypervisor does not). */
  share?(guests: readonly Guest[], groups: PageRef[][]): Promise<ShareOutcome>;
  /** Enforcing backends: the hypervisor's counters for these guests. */
  counters?(guests: readonly Guest[]): Promise<HypervisorCounters>;
  /** A backend that replays a recording (no guest runs) sets the ticks; live backends have none. */
  replayTicks?(guests: readonly Guest[]): ReplaySchedule;
  /** Stop every guest and remove every file this backend created. Idempotent. */
  close(): Promise<void>;
}
