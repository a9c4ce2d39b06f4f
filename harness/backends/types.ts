/**
 * The seams between the engine and a hypervisor. A backend knows how to start identical guests and how to
 * reach their memory; it knows nothing about sharing strategies (see docs/architecture.md).
 */
import type { GuestImage } from '../images/manifest.ts';
import type { PageRef, WorkloadSpec } from '../vocabulary.ts';
import type { GuestConsole } from '../workloads/console-protocol.ts';

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
  /**
   * A mixed fleet: guest i boots guestImages[i % length] instead of the provision call's image (images of one
   * kind; e.g. two kernel builds). Default: every guest the one image.
   */
  guestImages?: readonly GuestImage[];
  workload: WorkloadSpec;
  /** false → `nokaslr` on the kernel command line (identical kernel layout in every guest). */
  kaslr: boolean;
  /** How long to wait for every guest's boot marker. */
  bootTimeoutMs?: number;
  /** Told about each guest as it boots (for progress output). */
  onGuestBooted?: (guest: Guest, bootMs: number) => void;
}

/**
 * A guest as every backend gives it: its memory by guest-physical page, pause/resume/alive, and the few facts
 * a run records. What a backend can do beyond that is an ability (below): a typed object that is present only
 * where the backend has it — as LibVMI's driver table leaves a driver's missing functions empty. Callers test
 * for the ability (`guest.vcpu`, `guest.console?.…`) and never for the backend; a stand-in implements only
 * what it has.
 */
export interface Guest {
  /** Stable within a run: "g0", "g1", … */
  readonly id: string;
  readonly memoryPages: number;
  readonly image: GuestImage;
  /** A view of guest-physical pages [firstGfn, firstGfn+count). Zero-copy where the backend can. */
  pages(firstGfn: number, count: number): Buffer;
  pause(): Promise<void>;
  resume(): Promise<void>;
  alive(): boolean;
  /** Files a person may want to look at (serial log, memory file, monitor socket). */
  readonly files: Readonly<Record<string, string>>;
  /** How long from process start to the boot marker. */
  readonly bootMs: number;

  // Abilities: present where the backend has them.
  /** The hypervisor's view of vCPU state (registers, page-table walks): the "hypervisor route" to the kernel. */
  readonly vcpu?: VcpuAccess;
  /** What the guest's workload printed on its console (harness/workloads/console-protocol.ts). */
  readonly console?: GuestConsole;
  /** Which pages the host really backs; absent where every page is backed (Xen populates all of a domain). */
  readonly hostResidency?: HostResidency;
  /** All of guest RAM as one zero-copy view, where the backend maps it. */
  readonly memoryView?: MemoryView;
  /** For RAM that is read by copying: one copy per tick, and reads into the caller's buffer. */
  readonly tickCopy?: TickCopy;
  /** Guest RAM as anonymous memory of a host process that the host kernel may merge (KSM). */
  readonly hostProcess?: HostProcess;
  /** Writes into guest memory as a device would (test workloads only; never strategies or ledgers). */
  readonly deviceWrite?: DeviceWrite;
  /** A program inside the guest that runs commands for the harness (QEMU's guest agent on system images). */
  readonly agent?: GuestAgent;
}

/** How a command run in the guest ended, with what it printed (captured by the agent, UTF-8). */
export interface GuestExecResult {
  /** Its exit status; undefined when a signal ended it. */
  exitCode: number | undefined;
  signal: number | undefined;
  stdout: string;
  stderr: string;
}

/** A command started in the guest and not waited for (GuestAgent.spawn), as the agent last saw it. */
export type GuestProcessStatus = { exited: false } | ({ exited: true } & GuestExecResult);

/**
 * A guest agent: a daemon in the guest that the harness asks, over a channel of the hypervisor's (QEMU: a
 * virtio-serial port), to run commands and read files. Only a guest that boots a real system has one (QEMU's
 * qemu-guest-agent on system images). Its calls need the guest to run: while the guest is paused they wait.
 */
export interface GuestAgent {
  /** Is it there? (guest-ping) */
  ping(timeoutMs?: number): Promise<void>;
  /** The agent's version and the commands it has enabled (guest-info). */
  info(): Promise<{ version: string; commands: string[] }>;
  /**
   * Run a program (no shell: give /bin/sh and ['-c', …] for one) and wait for it to end, with its output.
   * A program still running after timeoutMs is killed and the call fails, naming it.
   */
  exec(path: string, args: readonly string[], options?: { timeoutMs?: number }): Promise<GuestExecResult>;
  /** Start a long-running program without waiting; its output goes where it sends it (not captured). */
  spawn(path: string, args: readonly string[]): Promise<number>;
  /** How a spawned program is doing. Once it is reported as exited, the agent forgets the pid. */
  status(pid: number): Promise<GuestProcessStatus>;
  /** A whole file of the guest, as bytes (it must fit in memory). */
  readFile(path: string): Promise<Buffer>;
}

/** vCPU 0's state as the hypervisor sees it (QEMU: QMP/HMP; Xen: the HVM context and a page walk). */
export interface VcpuAccess {
  /** Guest-physical address of a kernel virtual address, asked of the hypervisor. */
  translate(kernelVirtual: bigint): Promise<bigint>;
  /** vCPU 0's IDT base (a kernel virtual address), asked of the hypervisor. */
  idtBase(): Promise<bigint>;
  /** Bytes at a kernel virtual address, through the hypervisor's view of the vCPU's page tables. */
  readVirtual(address: bigint, length: number): Promise<Buffer>;
}

export interface HostResidency {
  /**
   * Which guest pages the host really backs right now (1) and which cost it nothing (0: never touched, a
   * hole in the RAM file; such a page is all zeros). Callers must not read a 0 page through pages(): on tmpfs
   * a read fault allocates it, so the harness itself would make the host back it.
   */
  residentPages(): Uint8Array;
}

export interface MemoryView {
  /**
   * All of guest RAM as one live, zero-copy view whose address does not move until teardown; undefined while
   * the backend has none (QEMU anonymous RAM outside a tick copy). Lets native code compare pages in place.
   * Like pages(), it must not be read at a page the residency marks 0.
   */
  all(): Buffer | undefined;
}

/**
 * Backends that can only read guest RAM by copying it (QEMU's anonymous RAM, from outside the process) take
 * one copy of the resident pages once per tick while the guests are paused; pages() then serves views of it
 * until dropTickCopy(). QEMU guests have it for both RAM kinds (on shared-file RAM the copy does nothing);
 * absent where pages() is always a view of guest memory (Xen, replayed and in-memory guests).
 */
export interface TickCopy {
  copyForTick(residency: Uint8Array | undefined): void;
  dropTickCopy(): void;
  /**
   * Read pages [firstGfn, firstGfn+count) into `target` at `offset` instead of a fresh Buffer, so that a scan
   * reuses one buffer (a fresh one costs a page fault per page). Never at a page the residency marks 0.
   */
  readPagesInto(firstGfn: number, count: number, target: Buffer, offset: number): void;
}

export interface HostProcess {
  /** Where the RAM is; undefined until the backend knows (QEMU: after the boot). */
  memory(): HostProcessMemory | undefined;
}

export interface DeviceWrite {
  /**
   * Store bytes into one guest page (within it), as a device would: for test workloads that wait to be told
   * (the cowprobe doorbell).
   */
  writeMemory(gfn: number, offset: number, bytes: Buffer): Promise<void>;
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

/** What backing free frames by a zero frame did (Backend.reclaimFree). */
export interface FreeReclaimOutcome {
  /** Frames now backed by the zero frame (the zero frame's own gfn included). */
  backed: PageRef[];
  /** The zero frame's sharing handle (undefined when none was found: every frame is then in failed). */
  zeroFrame: bigint | undefined;
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
  /**
   * Enforcing backends: back free frames (found free by the page classes in paused guests, per guest) by one
   * zero frame — the one exception to byte verification (sharing/ledger.ts, "FREE PAGES RECLAIMED").
   */
  reclaimFree?(guests: readonly Guest[], frames: readonly (readonly number[])[]): Promise<FreeReclaimOutcome>;
  /** Enforcing backends: per gfn, 1 while the hypervisor backs it by a shared frame. A query: changes nothing. */
  sharedGfns?(guest: Guest, gfns: readonly number[]): Uint8Array;
  /** A backend that replays a recording (no guest runs) sets the ticks; live backends have none. */
  replayTicks?(guests: readonly Guest[]): ReplaySchedule;
  /** Stop every guest and remove every file this backend created. Idempotent. */
  close(): Promise<void>;
}
