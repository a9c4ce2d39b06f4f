/**
 * The manifest of a built guest image (manifest.json beside its files): what it was built from (exact Debian
 * package versions) and the sha256 of every file, so that a run can say exactly what it booted and a
 * corrupted cache entry is detected before it is used.
 *
 * One format for both kinds of image: a kernel image (kernel + busybox initramfs; `kind` absent, as every
 * manifest written before system images existed) and a system image (`kind: 'system'`: a real Debian system on
 * one qcow2 base disk, booted with the tree's own kernel and initrd). Both share schema, name, recipeHash,
 * builtAt, the kernel and its -dbg package, and `files` (each with its sha256); each reader checks its kind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sha256File } from '../util/hash.ts';
import { XmeError } from '../util/errors.ts';
import { BUSYBOX_WORKLOADS, type BusyboxWorkloadName } from '../vocabulary.ts';

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
  /** Absent in a kernel image's manifest (as in every manifest before system images); 'system' in a system image's. */
  kind?: 'kernel';
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
  workloads: BusyboxWorkloadName[];
  files: Record<ImageFile, FileRecord>;
}

/** A verified, ready-to-boot kernel image: vmlinuz + the busybox initramfs. */
export interface KernelImage {
  /** Absent on kernel images (as before system images existed); a system image has 'system'. */
  kind?: 'kernel';
  name: string;
  dir: string;
  manifest: ImageManifest;
  path(file: ImageFile): string;
}

export const SYSTEM_IMAGE_FILES = ['baseDisk', 'vmlinuz', 'initrd', 'systemMap', 'config'] as const;
export type SystemImageFile = (typeof SYSTEM_IMAGE_FILES)[number];

/** A package installed in a system image's tree (dpkg-query inside it). */
export interface InstalledPackage extends PackageRecord {
  architecture: string;
}

export interface SystemImageManifest {
  schema: typeof MANIFEST_SCHEMA;
  kind: 'system';
  name: string;
  /** Hash of the package list, the build script, the kernel package and the apt sources: a change rebuilds. */
  recipeHash: string;
  builtAt: string;
  kernelRelease: string;
  /** The kernel installed in the tree (its vmlinuz and initrd are files.vmlinuz and files.initrd). */
  kernel: PackageRecord;
  /** The -dbg package the real System.map came from. */
  debugPackage: PackageRecord;
  /** Debian release bootstrapped, and the apt source lines it came from (the host's own archive). */
  suite: string;
  sources: string[];
  /** What mmdebstrap was asked to include (the package list, the kernel as package=version). */
  requested: string[];
  /** Every package installed in the tree, sorted by name. */
  packages: InstalledPackage[];
  /** The C code base of the build workload: a Debian source package's upstream tree, and how to build it. */
  buildSource: { package: string; version: string; dir: string; build: string; clean: string };
  /** pgbench tables created at build time: `pgbench -T … <database>` runs without `pgbench -i`. */
  pgbench: { database: string; scale: number };
  /** Kernel command line that mounts the base disk as / (append console, KASLR and quiet options to it). */
  kernelCommandLine: string;
  /** Bytes of the tree (apparent size) and the ext4 file system's size (the qcow2 holds only used blocks). */
  treeBytes: number;
  fileSystemBytes: number;
  files: Record<SystemImageFile, FileRecord>;
}

export type AnyImageManifest = ImageManifest | SystemImageManifest;

/** A verified system image: boot files.vmlinuz + files.initrd on an overlay of files.baseDisk (read-only). */
export interface SystemImage {
  kind: 'system';
  name: string;
  dir: string;
  manifest: SystemImageManifest;
  path(file: SystemImageFile): string;
}

/**
 * What a guest boots, of either kind; `kind` tells them apart without a downcast (`image.kind === 'system'`).
 * What both have: name, dir, the kernel (manifest.kernelRelease, kernel, debugPackage) and path() of vmlinuz,
 * systemMap and config.
 */
export type GuestImage = KernelImage | SystemImage;

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

function requireCount(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fail(field, 'must be a non-negative integer');
  return value;
}

function requireStringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0) fail(field, 'must be a non-empty list');
  return value.map((item, index) => requireString(item, `${field}[${index}]`));
}

/** files.<key> for every key: a plain file name, its sha256 and size. */
function requireFiles<K extends string>(value: unknown, keys: readonly K[]): Record<K, FileRecord> {
  if (typeof value !== 'object' || value === null) fail('files', 'must be an object');
  const rawFiles = value as Record<string, unknown>;
  const files = {} as Record<K, FileRecord>;
  for (const key of keys) {
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
  return files;
}

function requireObject(json: unknown): Record<string, unknown> {
  if (typeof json !== 'object' || json === null) fail('(root)', 'must be an object');
  const raw = json as Record<string, unknown>;
  if (raw.schema !== MANIFEST_SCHEMA) fail('schema', `must be ${MANIFEST_SCHEMA} (this xme reads schema ${MANIFEST_SCHEMA})`);
  return raw;
}

/** Validate parsed JSON as a kernel image's manifest; an error names the offending field. */
export function parseManifest(json: unknown): ImageManifest {
  const raw = requireObject(json);
  if (raw.kind !== undefined && raw.kind !== 'kernel') {
    fail('kind', `is ${JSON.stringify(raw.kind)}: not a kernel + initramfs image (those have no kind, or 'kernel')`);
  }
  if (!Array.isArray(raw.workloads) || raw.workloads.some((w) => !(BUSYBOX_WORKLOADS as readonly unknown[]).includes(w))) {
    fail('workloads', `must be a list of ${BUSYBOX_WORKLOADS.join('/')}`);
  }
  const files = requireFiles(raw.files, IMAGE_FILES);
  return {
    schema: MANIFEST_SCHEMA,
    name: requireString(raw.name, 'name'),
    recipeHash: requireString(raw.recipeHash, 'recipeHash'),
    builtAt: requireString(raw.builtAt, 'builtAt'),
    kernelRelease: requireString(raw.kernelRelease, 'kernelRelease'),
    kernel: requirePackage(raw.kernel, 'kernel'),
    debugPackage: requirePackage(raw.debugPackage, 'debugPackage'),
    busybox: requirePackage(raw.busybox, 'busybox'),
    workloads: raw.workloads as BusyboxWorkloadName[],
    files,
  };
}

/** Validate parsed JSON as a system image's manifest; an error names the offending field. */
export function parseSystemManifest(json: unknown): SystemImageManifest {
  const raw = requireObject(json);
  if (raw.kind !== 'system') fail('kind', `must be 'system' for a system image (is ${JSON.stringify(raw.kind)})`);
  const files = requireFiles(raw.files, SYSTEM_IMAGE_FILES);
  if (!Array.isArray(raw.packages) || raw.packages.length === 0) fail('packages', 'must be a non-empty list');
  const packages = raw.packages.map((value, index): InstalledPackage => {
    const record = requirePackage(value, `packages[${index}]`);
    return { ...record, architecture: requireString((value as Record<string, unknown>).architecture, `packages[${index}].architecture`) };
  });
  const seen = new Set<string>();
  for (const [index, record] of packages.entries()) {
    const key = `${record.package}:${record.architecture}`;
    if (seen.has(key)) fail(`packages[${index}]`, `lists ${key} a second time`);
    seen.add(key);
  }
  if (typeof raw.buildSource !== 'object' || raw.buildSource === null) fail('buildSource', 'must be an object');
  const buildSource = raw.buildSource as Record<string, unknown>;
  if (typeof raw.pgbench !== 'object' || raw.pgbench === null) fail('pgbench', 'must be an object');
  const pgbench = raw.pgbench as Record<string, unknown>;
  const scale = requireCount(pgbench.scale, 'pgbench.scale');
  if (scale < 1) fail('pgbench.scale', 'must be at least 1');
  return {
    schema: MANIFEST_SCHEMA,
    kind: 'system',
    name: requireString(raw.name, 'name'),
    recipeHash: requireString(raw.recipeHash, 'recipeHash'),
    builtAt: requireString(raw.builtAt, 'builtAt'),
    kernelRelease: requireString(raw.kernelRelease, 'kernelRelease'),
    kernel: requirePackage(raw.kernel, 'kernel'),
    debugPackage: requirePackage(raw.debugPackage, 'debugPackage'),
    suite: requireString(raw.suite, 'suite'),
    sources: requireStringList(raw.sources, 'sources'),
    requested: requireStringList(raw.requested, 'requested'),
    packages,
    buildSource: {
      package: requireString(buildSource.package, 'buildSource.package'),
      version: requireString(buildSource.version, 'buildSource.version'),
      dir: requireString(buildSource.dir, 'buildSource.dir'),
      build: requireString(buildSource.build, 'buildSource.build'),
      clean: requireString(buildSource.clean, 'buildSource.clean'),
    },
    pgbench: { database: requireString(pgbench.database, 'pgbench.database'), scale },
    kernelCommandLine: requireString(raw.kernelCommandLine, 'kernelCommandLine'),
    treeBytes: requireCount(raw.treeBytes, 'treeBytes'),
    fileSystemBytes: requireCount(raw.fileSystemBytes, 'fileSystemBytes'),
    files,
  };
}

/** Either kind, told apart by `kind` (absent: a kernel image, as every manifest before system images). */
export function parseAnyManifest(json: unknown): AnyImageManifest {
  const kind = typeof json === 'object' && json !== null ? (json as Record<string, unknown>).kind : undefined;
  return kind === 'system' ? parseSystemManifest(json) : parseManifest(json);
}

export async function fileRecord(dir: string, file: string): Promise<FileRecord> {
  const full = path.join(dir, file);
  return { file, sha256: await sha256File(full), bytes: fs.statSync(full).size };
}

export type ImageCheck = { ok: true; image: KernelImage } | { ok: false; reason: string };
export type SystemImageCheck = { ok: true; image: SystemImage } | { ok: false; reason: string };

/**
 * Read the manifest in dir with `parse`, then verify every file it lists: present, with its recorded size and
 * sha256. Returns the manifest, or why the image is not usable.
 */
async function verifyImage<M extends AnyImageManifest>(
  dir: string,
  parse: (json: unknown) => M,
): Promise<{ ok: true; manifest: M } | { ok: false; reason: string }> {
  const manifestPath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifestPath)) return { ok: false, reason: 'not built' };
  let manifest: M;
  try {
    manifest = parse(JSON.parse(fs.readFileSync(manifestPath, 'utf8')));
  } catch (error) {
    return { ok: false, reason: error instanceof XmeError ? error.message : `manifest.json is not valid JSON` };
  }
  for (const record of Object.values(manifest.files) as FileRecord[]) {
    const full = path.join(dir, record.file);
    if (!fs.existsSync(full)) return { ok: false, reason: `${record.file} is missing` };
    const bytes = fs.statSync(full).size;
    if (bytes !== record.bytes) return { ok: false, reason: `${record.file} has ${bytes} bytes, manifest says ${record.bytes}` };
    const sha = await sha256File(full);
    if (sha !== record.sha256) return { ok: false, reason: `${record.file} sha256 ${sha.slice(0, 12)}… ≠ manifest ${record.sha256.slice(0, 12)}…` };
  }
  return { ok: true, manifest };
}

/** Read and verify the kernel image in dir: manifest valid, every file present with its recorded size and sha256. */
export async function checkImage(dir: string): Promise<ImageCheck> {
  const check = await verifyImage(dir, parseManifest);
  if (!check.ok) return check;
  const manifest = check.manifest;
  return {
    ok: true,
    image: { name: manifest.name, dir, manifest, path: (file) => path.join(dir, manifest.files[file].file) },
  };
}

/** Read and verify the system image in dir, as checkImage does for a kernel image. */
export async function checkSystemImage(dir: string): Promise<SystemImageCheck> {
  const check = await verifyImage(dir, parseSystemManifest);
  if (!check.ok) return check;
  const manifest = check.manifest;
  return {
    ok: true,
    image: { kind: 'system', name: manifest.name, dir, manifest, path: (file) => path.join(dir, manifest.files[file].file) },
  };
}
