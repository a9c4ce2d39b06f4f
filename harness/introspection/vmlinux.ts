/**
 * The vmlinux inside a bzImage, and the kernel's BTF inside that vmlinux — read from the image file alone.
 * Boot protocol (Documentation/arch/x86/boot.rst): setup_sects @0x1f1 (0 means 4), payload_offset @0x248 and
 * payload_length @0x24c (protocol ≥ 2.08), relative to the protected-mode code, which starts after
 * (setup_sects + 1) × 512 bytes. The payload is the compressed vmlinux; the kernel build appends its
 * uncompressed size as a 32-bit little-endian word after it (inside payload_length).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { XmeError } from '../util/errors.ts';
import { elfSection } from './elf.ts';
import { decompressLz4Legacy } from './lz4-legacy.ts';

export type PayloadCompression = 'lz4' | 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'lzma' | 'lzo' | 'unknown';

function compressionOf(payload: Buffer): PayloadCompression {
  const magic = payload.subarray(0, 6);
  if (magic.readUInt32LE(0) === 0x184c2102) return 'lz4';
  if (magic[0] === 0x1f && (magic[1] === 0x8b || magic[1] === 0x9e)) return 'gzip';
  if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (magic.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (magic.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (magic[0] === 0x5d && magic[1] === 0 && magic[2] === 0) return 'lzma';
  if (magic[0] === 0x89 && magic.toString('latin1', 1, 4) === 'LZO') return 'lzo';
  return 'unknown';
}

/** The compressed payload of a bzImage: its compression and its bytes (the size word included). */
export function bzImagePayload(image: Buffer, source = 'vmlinuz'): { compression: PayloadCompression; payload: Buffer } {
  if (image.length < 0x250 || image.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new XmeError(`${source} is not a bzImage (no HdrS setup header)`);
  const protocol = image.readUInt16LE(0x206);
  if (protocol < 0x208) throw new XmeError(`${source}: boot protocol ${protocol.toString(16)} has no payload fields (2.08 or later needed)`);
  const setupSectors = image[0x1f1] || 4;
  const start = (setupSectors + 1) * 512 + image.readUInt32LE(0x248);
  const length = image.readUInt32LE(0x24c);
  if (length < 8 || start + length > image.length) throw new XmeError(`${source}: the compressed kernel lies outside the file (truncated?)`);
  const payload = image.subarray(start, start + length);
  return { compression: compressionOf(payload), payload };
}

/** Decompress a bzImage's payload: the vmlinux ELF file. LZ4 (Debian's choice) and gzip are supported. */
export function vmlinuxFromBzImage(image: Buffer, source = 'vmlinuz'): Buffer {
  const { compression, payload } = bzImagePayload(image, source);
  const size = payload.readUInt32LE(payload.length - 4);
  let vmlinux: Buffer;
  if (compression === 'lz4') vmlinux = decompressLz4Legacy(payload, size, source);
  else if (compression === 'gzip') vmlinux = zlib.gunzipSync(payload.subarray(0, payload.length - 4));
  else
    throw new XmeError(
      `${source}: the kernel is ${compression}-compressed; only lz4 and gzip kernels are read here`,
      'the BTF is then read from guest memory instead',
    );
  if (vmlinux.length !== size) throw new XmeError(`${source}: vmlinux decompressed to ${vmlinux.length} bytes, the kernel build recorded ${size}`);
  return vmlinux;
}

/** The .BTF section of the vmlinux inside a bzImage file; undefined when the kernel has none. */
export function btfFromVmlinuz(file: string): Buffer | undefined {
  const vmlinux = vmlinuxFromBzImage(fs.readFileSync(file), file);
  const section = elfSection(vmlinux, '.BTF', `${file} (vmlinux)`);
  return section ? Buffer.from(section) : undefined;
}
