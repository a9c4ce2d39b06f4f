/**
 * Decoder of the LZ4 "legacy frame", the format in which Debian's x86-64 kernels carry their vmlinux inside
 * the bzImage (CONFIG_KERNEL_LZ4). Format (lz4's doc/lz4_Frame_format.md, "Legacy frame"; lz4_Block_format.md):
 *  - magic 0x184C2102 (bytes 02 21 4c 18), then blocks: a 32-bit little-endian compressed size, that many bytes of
 *    one LZ4 block that decompresses to at most 8 MiB. The frame ends where the input ends or where another
 *    frame's magic number stands in place of a block size (concatenated frames). The kernel build appends the
 *    uncompressed size as a 32-bit word after the last block; the caller passes it as `expectedSize`, so that
 *    the decoder stops there and a short output is an error.
 *  - a block is a run of sequences: a token (high nibble: literal length, low nibble: match length − 4; 15 means
 *    "more length bytes follow, each added, until one is below 255"), the literals, then (except in the last
 *    sequence) a 16-bit little-endian offset back into the output and the match (copied byte by byte, so an
 *    offset smaller than the length repeats).
 */
import { XmeError } from '../util/errors.ts';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_BYTES = 8 * 1024 * 1024;

/** Decompress one LZ4 block from input[start, end) into output at `at`; returns the new end of the output. */
function decodeBlock(input: Buffer, start: number, end: number, output: Buffer, at: number, source: string): number {
  let i = start;
  let o = at;
  while (i < end) {
    const token = input[i++]!;
    let literals = token >> 4;
    if (literals === 15) {
      let more: number;
      do {
        if (i >= end) throw new XmeError(`${source}: LZ4 block ends inside a literal length`);
        more = input[i++]!;
        literals += more;
      } while (more === 255);
    }
    if (i + literals > end) throw new XmeError(`${source}: LZ4 literals run past the block`);
    if (o + literals > output.length) throw new XmeError(`${source}: LZ4 output is longer than the size the kernel build recorded`);
    input.copy(output, o, i, i + literals);
    i += literals;
    o += literals;
    if (i >= end) break; // the last sequence has literals only
    if (i + 2 > end) throw new XmeError(`${source}: LZ4 block ends inside a match offset`);
    const offset = input[i]! | (input[i + 1]! << 8);
    i += 2;
    if (offset === 0 || o - offset < 0) throw new XmeError(`${source}: LZ4 match offset ${offset} points before the output`);
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      let more: number;
      do {
        if (i >= end) throw new XmeError(`${source}: LZ4 block ends inside a match length`);
        more = input[i++]!;
        length += more;
      } while (more === 255);
    }
    if (o + length > output.length) throw new XmeError(`${source}: LZ4 output is longer than the size the kernel build recorded`);
    let from = o - offset;
    if (offset >= length) {
      output.copy(output, o, from, from + length);
      o += length;
    } else {
      for (let k = 0; k < length; k++) output[o++] = output[from++]!;
    }
  }
  return o;
}

/**
 * Decompress an LZ4 legacy frame (magic included) into exactly `expectedSize` bytes. Trailing bytes after the
 * last block (the kernel's appended size word) are ignored once the output is complete.
 */
export function decompressLz4Legacy(input: Buffer, expectedSize: number, source = 'LZ4 data'): Buffer {
  if (input.length < 4 || input.readUInt32LE(0) !== LZ4_LEGACY_MAGIC) throw new XmeError(`${source}: not an LZ4 legacy frame (no magic 02 21 4c 18)`);
  const output = Buffer.allocUnsafe(expectedSize);
  let i = 4;
  let o = 0;
  while (o < expectedSize) {
    if (i + 4 > input.length) break;
    const size = input.readUInt32LE(i);
    i += 4;
    if (size === LZ4_LEGACY_MAGIC) continue; // a concatenated frame
    if (size > input.length - i) throw new XmeError(`${source}: LZ4 block of ${size} bytes at ${i - 4} runs past the input`);
    const before = o;
    o = decodeBlock(input, i, i + size, output, o, source);
    if (o - before > LEGACY_BLOCK_BYTES) throw new XmeError(`${source}: LZ4 legacy block decompressed to more than 8 MiB`);
    i += size;
  }
  if (o !== expectedSize) throw new XmeError(`${source}: LZ4 data decompressed to ${o} bytes, the kernel build recorded ${expectedSize}`);
  return output;
}
