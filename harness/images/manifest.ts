/**
 * The manifest of a built guest image (manifest.json beside its files): what it was built from (exact Debian
 * package versions) and the sha256 of every file, so that a run can say exactly what it booted and a
 * corrupted cache entry is detected before it is used.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sha256File } from '../util/hash.ts';
import { XmeError } from '../util/errors.ts';
import { WORKLOADS, type WorkloadName } from '../vocabulary.ts';

export const MANIFEST_SCHEMA = 1;
export const IMAGE_FILES = ['vmlinuz', 'initramfs', 'systemMap', 'config'] as const;
export type ImageFile = (typeof IMAGE_FILES)[number];

export interface FileRecord {
  /** File name inside the image directory. */
  file: string;
  sha256: string;
  bytes: number;
}

export interface PackageRecord {
  package: string;
  version: string;
}

export interface ImageManifest {
  schema: typeof MANIFEST_SCHEMA;
  name: string;
  /** Hash of everything the build depends on (recipe, package versions, init sources): a change rebuilds. */
  recipeHash: string;
  builtAt: string;
  /** `uname -r` of the guest kernel, e.g. 6.1.0-56-cloud-amd64. */
  kernelRelease: string;
  kernel: PackageRecord;
  /** The -dbg package the real System.map came from (linux-image-*'s own is an 83-byte placeholder). */
  debugPackage: PackageRecord;
  busybox: PackageRecord;
  workloads: WorkloadName[];
  files: Record<ImageFile, FileRecord>;
}

/** A verified, ready-to-boot image. */
export interface GuestImage {
  name: string;
  dir: string;
  manifest: ImageManifest;
  path(file: ImageFile): string;
}

function fail(field: string, problem: string): never {
  throw new XmeError(`invalid image manifest: field '${field}' ${problem}`, 'rebuild the image: xme image build --force');
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(field, 'must be a non-empty string');
  return value;
}

function requirePackage(value: unknown, field: string): PackageRecord {
  if (typeof value !== 'object' || value === null) fail(field, 'must be an object');
  const record = value as Record<string, unknown>;
  return { package: requireString(record.package, `${field}.package`), version: requireString(record.version, `${field}.version`) };
}

/** Validate parsed JSON as a manifest; an error names the offending field. */
export function parseManifest(json: unknown): ImageManifest {
  if (typeof json !== 'object' || json === null) fail('(root)', 'must be an object');
  const raw = json as Record<string, unknown>;
  if (raw.schema !== MANIFEST_SCHEMA) fail('schema', `must be ${MANIFEST_SCHEMA} (this xme reads schema ${MANIFEST_SCHEMA})`);
  if (!Array.isArray(raw.workloads) || raw.workloads.some((w) => !(WORKLOADS as readonly unknown[]).includes(w))) {
    fail('workloads', `must be a list of ${WORKLOADS.join('/')}`);
  }
  if (typeof raw.files !== 'object' || raw.files === null) fail('files', 'must be an object');
  const rawFiles = raw.files as Record<string, unknown>;
  const files = {} as Record<ImageFile, FileRecord>;
  for (const key of IMAGE_FILES) {
    const record = rawFiles[key] as Record<string, unknown> | undefined;
    if (typeof record !== 'object' || record === null) fail(`files.${key}`, 'is missing');
    const file = requireString(record.file, `files.${key}.file`);
    if (file.includes('/') || file.startsWith('.')) fail(`files.${key}.file`, 'must be a plain file name');
    const sha = requireString(record.sha256, `files.${key}.sha256`);
    if (!/^[0-9a-f]{64}$/.test(sha)) fail(`files.${key}.sha256`, 'must be 64 hex digits');
    if (typeof record.bytes !== 'number' || !Number.isInteger(record.bytes) || record.bytes < 0) {
      fail(`files.${key}.bytes`, 'must be a non-negative integer');
    }
    files[key] = { file, sha256: sha, bytes: record.bytes };
  }
  return {
    schema: MANIFEST_SCHEMA,
    name: requireString(raw.name, 'name'),
    recipeHash: requireString(raw.recipeHash, 'recipeHash'),
    builtAt: requireString(raw.builtAt, 'builtAt'),
    kernelRelease: requireString(raw.kernelRelease, 'kernelRelease'),
    kernel: requirePackage(raw.kernel, 'kernel'),
    debugPackage: requirePackage(raw.debugPackage, 'debugPackage'),
    busybox: requirePackage(raw.busybox, 'busybox'),
    workloads: raw.workloads as WorkloadName[],
    files,
  };
}

export async function fileRecord(dir: string, file: string): Promise<FileRecord> {
  const full = path.join(dir, file);
  return { file, sha256: await sha256File(full), bytes: fs.statSync(full).size };
}

export type ImageCheck = { ok: true; image: GuestImage } | { ok: false; reason: string };

/** Read and verify the image in dir: manifest valid, every file present with its recorded size and sha256. */
export async function checkImage(dir: string): Promise<ImageCheck> {
  const manifestPath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifestPath)) return { ok: false, reason: 'not built' };
  let manifest: ImageManifest;
  try {
    manifest = parseManifest(JSON.parse(fs.readFileSync(manifestPath, 'utf8')));
  } catch (error) {
    return { ok: false, reason: error instanceof XmeError ? error.message : `manifest.json is not valid JSON` };
  }
  for (const key of IMAGE_FILES) {
    const record = manifest.files[key];
    const full = path.join(dir, record.file);
    if (!fs.existsSync(full)) return { ok: false, reason: `${record.file} is missing` };
    const bytes = fs.statSync(full).size;
    if (bytes !== record.bytes) return { ok: false, reason: `${record.file} has ${bytes} bytes, manifest says ${record.bytes}` };
    const sha = await sha256File(full);
    if (sha !== record.sha256) return { ok: false, reason: `${record.file} sha256 ${sha.slice(0, 12)}… ≠ manifest ${record.sha256.slice(0, 12)}…` };
  }
  return {
    ok: true,
    image: { name: manifest.name, dir, manifest, path: (file) => path.join(dir, manifest.files[file].file) },
  };
}
