/**
 * The version string in a bzImage's setup header (the same text `file vmlinuz` shows). It is what the running
 * kernel's linux_banner must contain, so it binds a System.map check to the exact kernel build that was booted.
 * Boot protocol: "HdrS" at 0x202; the 16-bit field at 0x20e points to the string, relative to 0x200.
 */
import fs from 'node:fs';
import { XmeError } from '../util/errors.ts';

export interface KernelVersion {
  /** e.g. 6.1.0-56-cloud-amd64 */
  release: string;
  /** e.g. #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16): unique to one build */
  buildTag: string;
  /** The whole string. */
  text: string;
}

export function parseKernelVersionString(text: string): KernelVersion {
  const release = text.split(' ')[0] ?? '';
  const hash = text.indexOf(' #');
  if (!release || hash < 0) throw new XmeError(`unexpected kernel version string: ${JSON.stringify(text)}`);
  return { release, buildTag: text.slice(hash + 1), text };
}

export function bzImageVersion(header: Buffer, source = 'vmlinuz'): KernelVersion {
  if (header.length < 0x212 || header.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new XmeError(`${source} is not a bzImage (no HdrS setup header)`);
  }
  const offset = header.readUInt16LE(0x20e) + 0x200;
  const end = header.indexOf(0, offset);
  if (offset >= header.length || end < 0) throw new XmeError(`${source}: kernel version string is outside the header`);
  return parseKernelVersionString(header.toString('latin1', offset, end));
}

export function readBzImageVersion(file: string): KernelVersion {
  const fd = fs.openSync(file, 'r');
  try {
    const header = Buffer.alloc(64 * 1024);
    const read = fs.readSync(fd, header, 0, header.length, 0);
    return bzImageVersion(header.subarray(0, read), file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Does a linux_banner text belong to this kernel build? */
export function bannerMatches(banner: string, version: KernelVersion): boolean {
  return banner.startsWith(`Linux version ${version.release} `) && banner.includes(version.buildTag);
}
