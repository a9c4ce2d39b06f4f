/**
 * A backend whose "guests" are a recording's memory (xme replay): no VM, no hypervisor. Each repetition of the
 * replayed run gets the next recorded segment; the tick loop asks it for the recorded ticks (replayTicks) and,
 * before scoring each one, the guests load that tick's page files. Sharing is accounted, as on QEMU: nothing
 * can be enforced on a recording, so run.json says "accounted" even for a recording made on Xen.
 */
import type { Backend, BackendInfo, Guest, HostResidency, MemoryView, ProvisionOptions, ReplaySchedule } from '../backends/types.ts';
import type { GuestConsole } from '../workloads/console-protocol.ts';
import type { WorkloadProgress } from '../vocabulary.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { BackendFactory } from '../backends/registry.ts';
import type { GuestImage } from '../images/manifest.ts';
import { locateKernelInMemory } from '../introspection/kernel-locator.ts';
import { errorMessage } from '../util/errors.ts';
import { RecordingError, type RecordedGuest, type RecordedSegment } from './format.ts';
import { decodePageFile } from './page-file.ts';
import { readRecordedFile, type Recording } from './recording.ts';

/** A recording's memory and progress lines; it has no vCPU (its kernel is located by the memory route). */
export class ReplayGuest implements Guest {
  readonly files: Readonly<Record<string, string>>;
  readonly bootMs: number;
  private readonly ram: Buffer;
  private classes: Uint8Array | undefined;
  private recordedProgress: WorkloadProgress[] = [];
  private placementChecked = false;
  /** As live: which pages the host backed at this tick; absent where it backed all (a recording made on Xen). */
  readonly hostResidency?: HostResidency;
  /** The recorded progress lines of the current tick; a recording keeps no other console lines. */
  readonly console: GuestConsole = { progress: () => this.recordedProgress, lines: () => [] };
  readonly memoryView: MemoryView = { all: () => this.ram };

  constructor(
    private readonly recording: Recording,
    private readonly segment: RecordedSegment,
    private readonly index: number,
    readonly image: GuestImage,
  ) {
    const recorded: RecordedGuest = segment.guests[index]!;
    this.bootMs = recorded.bootMs;
    this.ram = Buffer.alloc(recorded.memoryPages * PAGE_SIZE);
    this.files = { recording: recording.dir };
    if (segment.residencyKnown) this.hostResidency = { residentPages: () => this.residency() };
  }

  get id(): string {
    return this.segment.guests[this.index]!.id;
  }

  get memoryPages(): number {
    return this.segment.guests[this.index]!.memoryPages;
  }

  /** Load recorded tick `tickIndex` of this segment into guest memory (checked again: the file may have changed). */
  enter(tickIndex: number): void {
    const entry = this.segment.ticks[tickIndex]!.guests[this.index]!;
    const data = readRecordedFile(this.recording.dir, entry);
    this.classes = decodePageFile(data, entry.file, { guest: this.id, memoryPages: this.memoryPages }, this.ram).classes;
    this.recordedProgress = entry.progress;
    if (!this.placementChecked) this.checkPlacement();
  }

  /** The recorded memory must still hold the kernel where the live run found it (a cheap guard against a mix-up). */
  private checkPlacement(): void {
    this.placementChecked = true;
    const live = this.segment.guests[this.index]!.placements.find((p) => p.route === 'memory');
    if (!live) return;
    let found: string;
    try {
      const placement = locateKernelInMemory(this, this.recording.kernel);
      found = `0x${placement.physicalBase.toString(16)}/0x${placement.virtualOffset.toString(16)}`;
    } catch (error) {
      found = `nothing (${errorMessage(error)})`;
    }
    if (found !== `${live.physicalBase}/${live.virtualOffset}`) {
      throw new RecordingError(
        `recording ${this.recording.dir}: guest ${this.id} of ${this.segment.id} holds its kernel at ${found}, the live run found it at ${live.physicalBase}/${live.virtualOffset}`,
        'a damaged recording is never scored; record the run again',
      );
    }
  }

  pages(firstGfn: number, count: number): Buffer {
    if (firstGfn < 0 || count < 0 || firstGfn + count > this.memoryPages)
      throw new RangeError(`pages ${firstGfn}+${count} are outside guest ${this.id} (${this.memoryPages} pages)`);
    return this.ram.subarray(firstGfn * PAGE_SIZE, (firstGfn + count) * PAGE_SIZE);
  }

  private residency(): Uint8Array {
    if (!this.classes) throw new Error(`guest ${this.id}: no tick loaded yet`);
    return this.classes.map((kind) => (kind === 0 ? 0 : 1));
  }

  pause(): Promise<void> {
    return Promise.resolve();
  }

  resume(): Promise<void> {
    return Promise.resolve();
  }

  alive(): boolean {
    return true;
  }
}

class ReplayBackend implements Backend {
  readonly name = 'replay';
  readonly enforcesSharing = false;

  constructor(
    private readonly recording: Recording,
    private readonly segment: RecordedSegment,
  ) {}

  provision(image: GuestImage, count: number, options: ProvisionOptions): Promise<Guest[]> {
    const { segment } = this;
    if (count !== segment.guests.length || options.memoryMiB !== segment.memoryMiB) {
      return Promise.reject(
        new RecordingError(
          `recording segment ${segment.id} holds ${segment.guests.length} guests of ${segment.memoryMiB} MiB, the replay asked for ${count} of ${options.memoryMiB} MiB`,
        ),
      );
    }
    return Promise.resolve(segment.guests.map((_, i) => new ReplayGuest(this.recording, segment, i, image)));
  }

  replayTicks(guests: readonly Guest[]): ReplaySchedule {
    const replayGuests = guests as readonly ReplayGuest[];
    return {
      ticks: this.segment.ticks.map((t) => ({ tick: t.tick, tS: t.tS })),
      enter: (index) => replayGuests.forEach((guest) => guest.enter(index)),
    };
  }

  info(): BackendInfo {
    const live = this.recording.manifest.backend;
    return {
      name: 'replay',
      version: `replay of ${this.recording.manifest.runId}, recorded on ${live ? `${live.name} ${live.version}` : 'an unknown backend'}`,
      accelerator: 'none',
      acceleratorReason: 'no guest runs: memory is read from the recording',
      cpuModel: live?.cpuModel ?? 'unknown',
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One backend per replayed repetition, each on the next recorded segment, in the order they were recorded. */
export function replayBackendFactory(recording: Recording, segments: readonly RecordedSegment[]): BackendFactory {
  let next = 0;
  return {
    check: () => Promise.resolve(),
    create: () => {
      const segment = segments[next++];
      if (!segment)
        return Promise.reject(new RecordingError(`the replay asked for more repetitions than recording ${recording.dir} holds (${segments.length})`));
      return Promise.resolve(new ReplayBackend(recording, segment));
    },
  };
}
