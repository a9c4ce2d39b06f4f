/**
 * `xme run --record`: keeps, at the chosen ticks, each guest's memory (page-file.ts) and what a replay needs to
 * score it with no VM (format.ts): the scenario, the image manifest and the kernel's System.map (with the
 * banner version it must match), each kernel's placement as the live run found it, times and workload
 * progress. It records after every strategy has scored the tick, while the guests are still paused, so that
 * the recording holds exactly the memory the strategies saw and its cost lands in no strategy's CPU.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { BackendInfo, Guest } from '../backends/types.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { GuestImage } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import { locateKernelByHypervisor, locateKernelInMemory } from '../introspection/kernel-locator.ts';
import type { KernelPlacement } from '../introspection/kernel-placement.ts';
import { harnessInfo, hostInfo } from '../results/provenance.ts';
import { writeJsonAtomically } from '../results/run-record.ts';
import type { RepetitionStart, ResultWriter, TickObserver } from '../results/result-writer.ts';
import type { RunEnd, RunHeader } from '../results/run.ts';
import type { Scenario } from '../scenario/scenario.ts';
import { measureThreadCpu } from '../util/thread-cpu.ts';
import { sha256 } from '../util/hash.ts';
import { errorMessage, XmeError } from '../util/errors.ts';
import { encodePageFile } from './page-file.ts';
import {
  MANIFEST_FILE,
  RECORDING_FORMAT,
  RECORDING_VERSION,
  SYSTEM_MAP_FILE,
  type RecordedGuest,
  type RecordedPlacement,
  type RecordedSegment,
  type RecordingManifest,
  type RecordingStatus,
} from './format.ts';

/** Which ticks of each repetition to keep: every tick, or these tick numbers (0 = the first scoring). */
export type TickChoice = 'all' | number[];

/** Parse --record-ticks: "all", or tick numbers separated by commas ("0,6,12"). */
export function parseTickChoice(text: string): TickChoice {
  if (text.trim() === 'all') return 'all';
  const ticks = text.split(',').map((part) => part.trim());
  if (ticks.some((t) => !/^\d+$/.test(t))) throw new XmeError(`--record-ticks '${text}' must be "all" or tick numbers separated by commas, e.g. 0,6,12`);
  return [...new Set(ticks.map(Number))].sort((a, b) => a - b);
}

/** Refuse, before anything boots, a scenario whose recording could not be replayed faithfully. */
export function checkRecordable(scenario: Scenario): void {
  if (!scenario.pauseDuringScan) {
    throw new XmeError(
      `scenario ${scenario.name} cannot be recorded: pauseDuringScan is false, so guest memory would change while it is written`,
      'set "pauseDuringScan": true',
    );
  }
  if (scenario.strategyGuests === 'apart') {
    throw new XmeError(
      `scenario ${scenario.name} cannot be recorded: strategyGuests "apart" gives every strategy other guests, and a recording holds one set of guests per repetition`,
      'record a scenario with strategyGuests "together" (the default)',
    );
  }
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

function recorded(placement: KernelPlacement): RecordedPlacement {
  return { physicalBase: hex(placement.physicalBase), virtualOffset: hex(placement.virtualOffset), route: placement.route };
}

export interface RecorderHeader {
  runId: string;
  scenario: Scenario;
  image: GuestImage;
  kernel: KernelInfo;
  /** The System.map the run used (the image's, or the scenario's override). */
  systemMapFile: string;
}

export class Recorder {
  private readonly manifest: RecordingManifest;

  private constructor(
    readonly dir: string,
    private readonly ticks: TickChoice,
    private readonly kernel: KernelInfo,
    manifest: RecordingManifest,
  ) {
    this.manifest = manifest;
  }

  /** Make the recording's folder, with the System.map and a manifest that lists no tick yet. */
  static create(dir: string, ticks: TickChoice, header: RecorderHeader): Recorder {
    fs.mkdirSync(dir, { recursive: false });
    const text = fs.readFileSync(header.systemMapFile);
    const packed = zlib.gzipSync(text);
    fs.writeFileSync(path.join(dir, SYSTEM_MAP_FILE), packed);
    const now = new Date().toISOString();
    const manifest: RecordingManifest = {
      format: RECORDING_FORMAT,
      version: RECORDING_VERSION,
      status: 'recording',
      createdAt: now,
      updatedAt: now,
      runId: header.runId,
      harness: harnessInfo(),
      host: hostInfo(),
      scenario: JSON.parse(JSON.stringify(header.scenario)) as Record<string, unknown>,
      ticks,
      image: { name: header.image.name, manifest: header.image.manifest },
      kernel: {
        version: header.kernel.version,
        systemMap: { file: SYSTEM_MAP_FILE, bytes: packed.length, sha256: sha256(packed), source: header.systemMapFile, textSha256: sha256(text) },
      },
      segments: [],
    };
    const recorder = new Recorder(dir, ticks, header.kernel, manifest);
    recorder.save();
    return recorder;
  }

  private save(): void {
    this.manifest.updatedAt = new Date().toISOString();
    writeJsonAtomically(path.join(this.dir, MANIFEST_FILE), this.manifest);
  }

  /** Total bytes of page files so far and the guest memory they hold, for a person (bytes per GiB). */
  size(): { pageFileBytes: number; guestBytes: number; ticks: number } {
    let pageFileBytes = 0;
    let guestBytes = 0;
    let ticks = 0;
    for (const segment of this.manifest.segments) {
      for (const tick of segment.ticks) {
        ticks++;
        tick.guests.forEach((file, g) => {
          pageFileBytes += file.bytes;
          guestBytes += segment.guests[g]!.memoryPages * PAGE_SIZE;
        });
      }
    }
    return { pageFileBytes, guestBytes, ticks };
  }

  /** The recorder of one repetition's guests. */
  segment(memoryMiB: number, repetition: number, guests: readonly Guest[], backend: BackendInfo): TickObserver {
    this.manifest.backend = backend;
    const segment: RecordedSegment = {
      id: `m${memoryMiB}-r${repetition}`,
      memoryMiB,
      repetition,
      residencyKnown: guests.every((g) => g.hostResidency !== undefined),
      guests: guests.map((g): RecordedGuest => ({ id: g.id, memoryPages: g.memoryPages, bootMs: g.bootMs, placements: [], placementErrors: [] })),
      ticks: [],
    };
    this.manifest.segments.push(segment);
    fs.mkdirSync(path.join(this.dir, segment.id));
    this.save();
    return { afterTick: (tick, tS, tickGuests, residency) => this.recordTick(segment, tick, tS, tickGuests, residency) };
  }

  private async recordTick(
    segment: RecordedSegment,
    tick: number,
    tS: number,
    guests: readonly Guest[],
    residency: readonly (Uint8Array | undefined)[],
  ): Promise<void> {
    if (this.ticks !== 'all' && !this.ticks.includes(tick)) return;
    if (segment.ticks.length === 0) await this.recordPlacements(segment, guests);
    const start = Date.now();
    // CPU of this thread only; the compression runs on libuv's pool threads, so recordWallMs is the figure that
    // tells how much longer the guests stayed paused.
    const measured = await measureThreadCpu(() =>
      Promise.all(
        guests.map(async (guest, g) => {
          const { file, counts } = await encodePageFile(guest, segment.residencyKnown ? residency[g] : undefined);
          const name = path.join(segment.id, `t${String(tick).padStart(4, '0')}-${guest.id}.xmp`);
          fs.writeFileSync(path.join(this.dir, name), file);
          return { guest: guest.id, file: name, bytes: file.length, sha256: sha256(file), counts, progress: guest.console?.progress() ?? [] };
        }),
      ),
    );
    segment.ticks.push({
      tick,
      tS,
      recordedAt: new Date(start).toISOString(),
      recordCpuMs: measured.cpuMs,
      recordWallMs: Date.now() - start,
      guests: measured.value,
    });
    this.save();
  }

  /** Where each kernel is, by every route the backend has: replay checks the recorded memory still says so. */
  private async recordPlacements(segment: RecordedSegment, guests: readonly Guest[]): Promise<void> {
    for (const [g, guest] of guests.entries()) {
      const entry = segment.guests[g]!;
      try {
        entry.placements.push(recorded(locateKernelInMemory(guest, this.kernel)));
      } catch (error) {
        entry.placementErrors.push(`memory route: ${errorMessage(error)}`);
      }
      if (!guest.vcpu) continue;
      try {
        entry.placements.push(recorded(await locateKernelByHypervisor(guest, this.kernel)));
      } catch (error) {
        entry.placementErrors.push(`hypervisor route: ${errorMessage(error)}`);
      }
    }
  }

  /** Seal the manifest with how the run ended; what was recorded before stays valid. Must not throw. */
  finish(status: Exclude<RecordingStatus, 'recording'>): void {
    try {
      this.manifest.status = status;
      this.save();
    } catch {
      // The manifest of the last complete tick is on disk already (written atomically after every tick).
    }
  }
}

/**
 * `xme run --record` as one of the run's writers: the recording folder is made when the run begins, each
 * repetition's guests are recorded at the chosen ticks, and the manifest is sealed with the run's ending.
 */
export class RecordingWriter implements ResultWriter {
  private recorderOf: Recorder | undefined;

  constructor(private readonly ticks: TickChoice) {}

  /** The recorder, once the run has begun. */
  get recorder(): Recorder | undefined {
    return this.recorderOf;
  }

  begin(run: RunHeader): void {
    this.recorderOf = Recorder.create(path.join(run.dir, 'recording'), this.ticks, {
      runId: run.runId,
      scenario: run.scenario,
      image: run.image,
      kernel: run.kernel,
      systemMapFile: run.systemMap,
    });
  }

  repetition(start: RepetitionStart): TickObserver | undefined {
    return this.recorderOf?.segment(start.memoryMiB, start.repetition, start.guests, start.backend);
  }

  end(end: RunEnd): void {
    this.recorderOf?.finish(end.status);
  }

  /** One line for a person: what was kept and how to replay it. */
  summaryLine(): string | undefined {
    if (!this.recorderOf) return undefined;
    const size = this.recorderOf.size();
    const perGiB = size.guestBytes > 0 ? ` (${((size.pageFileBytes / size.guestBytes) * 1024).toFixed(1)} MiB per GiB of guest memory)` : '';
    return `recording: ${this.recorderOf.dir}: ${size.ticks} tick(s), ${(size.pageFileBytes / 2 ** 20).toFixed(1)} MiB of page files for ${(size.guestBytes / 2 ** 30).toFixed(2)} GiB of guest memory${perGiB}; replay it with: xme replay ${this.recorderOf.dir}`;
  }
}
