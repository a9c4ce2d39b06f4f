/**
 * Opening a recording for replay: find its manifest, validate it (format.ts), and check every file it lists
 * (size and sha256) and its System.map before anything is scored, so that a truncated or altered recording is
 * refused with the file and the reason. The result carries what the runner needs instead of an image build:
 * the image (manifest only: a replay boots nothing) and the kernel's System.map, layout and version.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { GuestImage, ImageFile, SystemImageFile } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import { kernelLayout } from '../introspection/kernel-layout.ts';
import { SystemMap } from '../introspection/system-map.ts';
import { errorMessage } from '../util/errors.ts';
import { sha256, sha256FileSync } from '../util/hash.ts';
import { MANIFEST_FILE, parseManifest, RecordingError, type RecordedFile, type RecordingManifest } from './format.ts';

export interface Recording {
  dir: string;
  manifest: RecordingManifest;
  image: GuestImage;
  kernel: KernelInfo;
}

/** The folder holding recording.json: the one given, or the recording/ folder of a run's results. */
export function recordingDir(given: string): string {
  for (const dir of [given, path.join(given, 'recording')]) {
    if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  }
  throw new RecordingError(
    `no recording at ${given}: neither ${path.join(given, MANIFEST_FILE)} nor ${path.join(given, 'recording', MANIFEST_FILE)} exists`,
    'make one with xme run --record (it goes to results/<run-id>/recording/)',
  );
}

const DAMAGED = 'a damaged recording is never scored; record the run again';

function fileSize(dir: string, entry: RecordedFile): number {
  try {
    return fs.statSync(path.join(dir, entry.file)).size;
  } catch (error) {
    throw new RecordingError(`recording ${dir} is incomplete: ${entry.file} is missing (${errorMessage(error)})`, DAMAGED);
  }
}

function checkSize(dir: string, entry: RecordedFile, bytes: number): void {
  if (bytes !== entry.bytes) {
    throw new RecordingError(
      `recording ${dir} is damaged: ${entry.file} has ${bytes} bytes, the manifest says ${entry.bytes}${bytes < entry.bytes ? ' (truncated)' : ''}`,
      DAMAGED,
    );
  }
}

function checkHash(dir: string, entry: RecordedFile, sha: string): void {
  if (sha !== entry.sha256) throw new RecordingError(`recording ${dir} is damaged: ${entry.file} does not have the sha256 the manifest lists`, DAMAGED);
}

/** Throws unless the file exists with the recorded size and sha256 (streamed: nothing is kept in memory). */
export function checkRecordedFile(dir: string, entry: RecordedFile): void {
  checkSize(dir, entry, fileSize(dir, entry));
  checkHash(dir, entry, sha256FileSync(path.join(dir, entry.file)));
}

/** The file's bytes, read once and checked against the manifest (size, sha256) before anyone uses them. */
export function readRecordedFile(dir: string, entry: RecordedFile): Buffer {
  fileSize(dir, entry); // a missing file says "incomplete", as in checkRecordedFile
  const data = fs.readFileSync(path.join(dir, entry.file));
  checkSize(dir, entry, data.length);
  checkHash(dir, entry, sha256(data));
  return data;
}

function imageOf(dir: string, manifest: RecordingManifest): GuestImage {
  const path_ = (file: ImageFile | SystemImageFile): string => {
    if (file === 'systemMap') return path.join(dir, manifest.kernel.systemMap.file);
    throw new RecordingError(`a recording holds no ${file}: a replay boots nothing`);
  };
  const recorded = manifest.image.manifest;
  // Either kind of image, as recorded (a system image's manifest has kind 'system').
  return recorded.kind === 'system'
    ? { kind: 'system', name: manifest.image.name, dir, manifest: recorded, path: path_ }
    : { name: manifest.image.name, dir, manifest: recorded, path: path_ };
}

/** Open and check a recording (a recording folder or a run's results folder). */
export function openRecording(given: string): Recording {
  const dir = recordingDir(given);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch (error) {
    throw new RecordingError(
      `recording ${dir}: ${MANIFEST_FILE} is not readable JSON (${errorMessage(error)})`,
      'a damaged recording is never scored; record the run again',
    );
  }
  const manifest = parseManifest(json, dir);
  const { systemMap } = manifest.kernel;
  checkRecordedFile(dir, systemMap);
  for (const segment of manifest.segments) for (const tick of segment.ticks) for (const file of tick.guests) checkRecordedFile(dir, file);
  const text = zlib.gunzipSync(fs.readFileSync(path.join(dir, systemMap.file)));
  if (sha256(text) !== systemMap.textSha256) {
    throw new RecordingError(`recording ${dir} is damaged: ${systemMap.file} does not hold the System.map that was recorded`);
  }
  const map = SystemMap.parse(text.toString('latin1'), `${dir}/${systemMap.file}`);
  return { dir, manifest, image: imageOf(dir, manifest), kernel: { systemMap: map, layout: kernelLayout(map), version: manifest.kernel.version } };
}
