/**
 * The recording format, version 1 (docs/recording.md): a folder with recording.json (this manifest), the
 * kernel's System.map (gzip) and one page file per guest per recorded tick (page-file.ts). The manifest is
 * rewritten (atomically) after every recorded tick, so that the recording of an interrupted run is valid up to
 * its last complete tick. parseManifest() checks every field a replay relies on and names the one that is wrong.
 */
import type { BackendInfo } from '../backends/types.ts';
import type { WorkloadProgress } from '../vocabulary.ts';
import type { AnyImageManifest } from '../images/manifest.ts';
import type { KernelVersion } from '../introspection/bzimage.ts';
import type { PlacementRoute } from '../introspection/kernel-placement.ts';
import type { HarnessInfo, HostInfo } from '../results/provenance.ts';
import { XmeError } from '../util/errors.ts';
import type { PageCounts } from './page-file.ts';

export const RECORDING_FORMAT = 'xme-recording';
export const RECORDING_VERSION = 1;
export const MANIFEST_FILE = 'recording.json';
export const SYSTEM_MAP_FILE = 'System.map.gz';

export type RecordingStatus = 'recording' | 'completed' | 'interrupted' | 'failed';

/** A file of the recording, with what it must be. */
export interface RecordedFile {
  /** Relative to the recording's folder. */
  file: string;
  bytes: number;
  sha256: string;
}

export interface RecordedGuestTick extends RecordedFile {
  guest: string;
  counts: PageCounts;
  /** The guest's workload progress lines seen up to this tick (for throughput, as live). */
  progress: WorkloadProgress[];
}

export interface RecordedTick {
  tick: number;
  /** Seconds from the repetition's first tick, as in samples.csv. */
  tS: number;
  recordedAt: string;
  /** What recording this tick cost: the main thread's CPU (compression runs on pool threads, not counted) and the
   * wall time the guests stayed paused longer for it. Never charged to a strategy. */
  recordCpuMs: number;
  recordWallMs: number;
  guests: RecordedGuestTick[];
}

/** Where the live run found a guest's kernel, at the first recorded tick (hex strings: bigints). */
export interface RecordedPlacement {
  physicalBase: string;
  virtualOffset: string;
  route: PlacementRoute;
}

export interface RecordedGuest {
  id: string;
  memoryPages: number;
  bootMs: number;
  /** By each route the live backend had; a route that failed is absent and its reason in placementErrors. */
  placements: RecordedPlacement[];
  placementErrors: string[];
}

/** One repetition's guests (strategyGuests "together": one set of guests per memory size and repetition). */
export interface RecordedSegment {
  id: string;
  memoryMiB: number;
  repetition: number;
  /** false where the backend backs every page (Xen): no page is a hole, as live. */
  residencyKnown: boolean;
  guests: RecordedGuest[];
  ticks: RecordedTick[];
}

export interface RecordingManifest {
  format: typeof RECORDING_FORMAT;
  version: typeof RECORDING_VERSION;
  status: RecordingStatus;
  createdAt: string;
  updatedAt: string;
  /** The live run this was recorded from (its results folder name). */
  runId: string;
  harness: HarnessInfo;
  host: HostInfo;
  backend?: BackendInfo;
  /** The scenario as the live run ran it (validated again on replay). */
  scenario: Record<string, unknown>;
  /** Which ticks of each repetition were recorded. */
  ticks: 'all' | number[];
  image: { name: string; manifest: AnyImageManifest };
  kernel: { version: KernelVersion; systemMap: RecordedFile & { source: string; textSha256: string } };
  segments: RecordedSegment[];
}

export class RecordingError extends XmeError {}

/** Checks of parsed JSON that name the field at fault. */
function checker(where: string) {
  const fail = (field: string, problem: string): never => {
    throw new RecordingError(
      `recording ${where}: ${MANIFEST_FILE} field '${field}' ${problem}`,
      'this is not a complete xme recording (record it again with xme run --record)',
    );
  };
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, 'must be an object');
    return value as Record<string, unknown>;
  };
  const list = (value: unknown, field: string): unknown[] => (Array.isArray(value) ? value : fail(field, 'must be a list'));
  const text = (value: unknown, field: string): string => (typeof value === 'string' && value.length > 0 ? value : fail(field, 'must be a non-empty string'));
  const count = (value: unknown, field: string): number =>
    Number.isInteger(value) && (value as number) >= 0 ? (value as number) : fail(field, 'must be a whole number ≥ 0');
  const finite = (value: unknown, field: string): number =>
    typeof value === 'number' && Number.isFinite(value) ? value : fail(field, 'must be a finite number');
  const file = (value: unknown, field: string): RecordedFile => {
    const raw = object(value, field);
    const name = text(raw.file, `${field}.file`);
    if (name.includes('..') || name.startsWith('/')) fail(`${field}.file`, 'must be a path inside the recording');
    const sha = text(raw.sha256, `${field}.sha256`);
    if (!/^[0-9a-f]{64}$/.test(sha)) fail(`${field}.sha256`, 'must be 64 hex digits');
    return { file: name, bytes: count(raw.bytes, `${field}.bytes`), sha256: sha };
  };
  return { fail, object, list, text, count, finite, file };
}

/** Validate a parsed recording.json; `where` names the recording in errors. */
export function parseManifest(json: unknown, where: string): RecordingManifest {
  const c = checker(where);
  const raw = c.object(json, '(root)');
  if (raw.format !== RECORDING_FORMAT) c.fail('format', `must be "${RECORDING_FORMAT}"`);
  if (raw.version !== RECORDING_VERSION) c.fail('version', `is ${JSON.stringify(raw.version)}; this xme reads version ${RECORDING_VERSION}`);
  const status = raw.status as RecordingStatus;
  if (!['recording', 'completed', 'interrupted', 'failed'].includes(status)) c.fail('status', 'must be recording, completed, interrupted or failed');
  c.text(raw.runId, 'runId');
  c.object(raw.scenario, 'scenario');
  if (raw.ticks !== 'all') c.list(raw.ticks, 'ticks').forEach((t, i) => c.count(t, `ticks[${i}]`));
  const image = c.object(raw.image, 'image');
  c.text(image.name, 'image.name');
  c.object(image.manifest, 'image.manifest');
  const kernel = c.object(raw.kernel, 'kernel');
  const version = c.object(kernel.version, 'kernel.version');
  for (const key of ['release', 'buildTag', 'text']) c.text(version[key], `kernel.version.${key}`);
  c.file(kernel.systemMap, 'kernel.systemMap');
  c.text(c.object(kernel.systemMap, 'kernel.systemMap').textSha256, 'kernel.systemMap.textSha256');
  c.list(raw.segments, 'segments').forEach((value, s) => {
    const field = `segments[${s}]`;
    const segment = c.object(value, field);
    c.text(segment.id, `${field}.id`);
    c.count(segment.memoryMiB, `${field}.memoryMiB`);
    c.count(segment.repetition, `${field}.repetition`);
    if (typeof segment.residencyKnown !== 'boolean') c.fail(`${field}.residencyKnown`, 'must be true or false');
    const guests = c.list(segment.guests, `${field}.guests`).map((g, i) => {
      const guest = c.object(g, `${field}.guests[${i}]`);
      c.count(guest.memoryPages, `${field}.guests[${i}].memoryPages`);
      c.list(guest.placements, `${field}.guests[${i}].placements`);
      return c.text(guest.id, `${field}.guests[${i}].id`);
    });
    if (guests.length === 0) c.fail(`${field}.guests`, 'must name at least one guest');
    c.list(segment.ticks, `${field}.ticks`).forEach((t, k) => {
      const tick = c.object(t, `${field}.ticks[${k}]`);
      c.count(tick.tick, `${field}.ticks[${k}].tick`);
      c.finite(tick.tS, `${field}.ticks[${k}].tS`);
      const files = c.list(tick.guests, `${field}.ticks[${k}].guests`);
      if (files.length !== guests.length) c.fail(`${field}.ticks[${k}].guests`, `must hold one file per guest (${guests.length})`);
      files.forEach((f, g) => {
        const entry = c.object(f, `${field}.ticks[${k}].guests[${g}]`);
        c.file(entry, `${field}.ticks[${k}].guests[${g}]`);
        if (entry.guest !== guests[g]) c.fail(`${field}.ticks[${k}].guests[${g}].guest`, `must be ${guests[g]}`);
        c.list(entry.progress, `${field}.ticks[${k}].guests[${g}].progress`);
      });
    });
  });
  return raw as unknown as RecordingManifest;
}
