/**
 * Opening a recording for replay: find its manifest, validate it (format.ts), and check every file it lists
 * (size and sha256) and its System.map before anything is scored, so that a truncated or altered recording is
 * refused with the file and the reason. The result carries what the runner needs instead of an image build:
 * the image (manifest only: a replay boots nothing) and the kernel's System.map, layout and version.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import type { GuestImage, ImageFile } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import { kernelLayout } from '../introspection/kernel-layout.ts';
import { SystemMap } from '../introspection/system-map.ts';
import { errorMessage } from '../util/errors.ts';
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
  throw new RecordingError(`no recording at ${given}: neither ${path.join(given, MANIFEST_FILE)} nor ${path.join(given, 'recording', MANIFEST_FILE)} exists`, 'make one with xme run --record (it goes to results/<run-id>/recording/)');
}

function sha256Of(file: string): string {
  const hash = createHash('sha256');
  const descriptor = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(4 << 20);
    for (let read; (read = fs.readSync(descriptor, buffer, 0, buffer.length, null)) > 0; ) hash.update(buffer.subarray(0, read));
  } finally {
    fs.closeSync(descriptor);
  }
  return hash.digest('hex');
}

/** Throws unless the file exists with the recorded size and sha256. */
export function checkRecordedFile(dir: string, entry: RecordedFile): void {
  const file = path.join(dir, entry.file);
  let bytes: number;
  try {
    bytes = fs.statSync(file).size;
  } catch (error) {
    throw new RecordingError(`recording ${dir} is incomplete: ${entry.file} is missing (${errorMessage(error)})`, 'a damaged recording is never scored; record the run again');
  }
  if (bytes !== entry.bytes) {
    throw new RecordingError(`recording ${dir} is damaged: ${entry.file} has ${bytes} bytes, the manifest says ${entry.bytes}${bytes < entry.bytes ? ' (truncated)' : ''}`, 'a damaged recording is never scored; record the run again');
  }
  if (sha256Of(file) !== entry.sha256) {
    throw new RecordingError(`recording ${dir} is damaged: ${entry.file} does not have the sha256 the manifest lists`, 'a damaged recording is never scored; record the run again');
  }
}

function imageOf(dir: string, manifest: RecordingManifest): GuestImage {
  return {
    name: manifest.image.name,
    dir,
    manifest: manifest.image.manifest,
    path(file: ImageFile): string {
      if (file === 'systemMap') return path.join(dir, manifest.kernel.systemMap.file);
      throw new RecordingError(`a recording holds no ${file}: a replay boots nothing`);
    },
  };
}

/** Open and check a recording (a recording folder or a run's results folder). */
export function openRecording(given: string): Recording {
  const dir = recordingDir(given);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch (error) {
    throw new RecordingError(`recording ${dir}: ${MANIFEST_FILE} is not readable JSON (${errorMessage(error)})`, 'a damaged recording is never scored; record the run again');
  }
  const manifest = parseManifest(json, dir);
  const { systemMap } = manifest.kernel;
  checkRecordedFile(dir, systemMap);
  for (const segment of manifest.segments) for (const tick of segment.ticks) for (const file of tick.guests) checkRecordedFile(dir, file);
  const text = zlib.gunzipSync(fs.readFileSync(path.join(dir, systemMap.file)));
  if (createHash('sha256').update(text).digest('hex') !== systemMap.textSha256) {
    throw new RecordingError(`recording ${dir} is damaged: ${systemMap.file} does not hold the System.map that was recorded`);
  }
  const map = SystemMap.parse(text.toString('latin1'), `${dir}/${systemMap.file}`);
  return { dir, manifest, image: imageOf(dir, manifest), kernel: { systemMap: map, layout: kernelLayout(map), version: manifest.kernel.version } };
}
