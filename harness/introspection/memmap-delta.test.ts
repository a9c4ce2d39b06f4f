/**
 * The incremental classification's delta (memmap-delta.ts) on a stand-in for guest memory: which struct pages
 * changed, found by comparing in place and copying only what changed; and which frames that brings back to
 * the classifier (a changed frame's whole block as it was). The classifier on real guests, incremental against
 * from scratch: page-classes.e2e.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../vocabulary.ts';
import { framesToRedo, refreshCopy, type PhysicalAccess } from './memmap-delta.ts';

const STRIDE = 64;

/** Guest memory as one buffer at guest-physical 0; counts the bytes it copies out. */
function memoryOf(bytes: Buffer): PhysicalAccess & { copied: number } {
  const access = {
    copied: 0,
    equalsPhysical: (address: bigint, length: number, source: Buffer, sourceOffset: number) =>
      bytes.compare(source, sourceOffset, sourceOffset + length, Number(address), Number(address) + length) === 0,
    copyPhysical: (address: bigint, length: number, target: Buffer, targetOffset: number) => {
      access.copied += length;
      bytes.copy(target, targetOffset, Number(address), Number(address) + length);
    },
  };
  return access;
}

describe('refreshCopy', () => {
  const frames = 40 * (PAGE_SIZE / STRIDE); // 40 pages of struct pages, two ranges
  const guest = Buffer.alloc(frames * STRIDE);
  for (let i = 0; i < guest.length; i++) guest[i] = (i * 7) & 0xff;
  const ranges = [
    { physical: 0n, length: 24 * PAGE_SIZE, at: 0 },
    { physical: BigInt(24 * PAGE_SIZE), length: 16 * PAGE_SIZE, at: 24 * PAGE_SIZE },
  ];

  it('marks exactly the records that changed, copies only their pages, and leaves the copy equal to guest memory', () => {
    const copy = Buffer.from(guest);
    const changedFrames = [3, 64 * 20 + 5, 64 * 30, 64 * 30 + 63, frames - 1];
    for (const frame of changedFrames) guest.writeUInt8(guest[frame * STRIDE + 9]! ^ 0x5a, frame * STRIDE + 9);
    const memory = memoryOf(guest);
    const changed = new Uint8Array(frames);
    const list: number[] = [];
    expect(refreshCopy(memory, ranges, copy, STRIDE, changed, list)).toBe(changedFrames.length);
    expect([...changed.keys()].filter((f) => changed[f] === 1)).toEqual(changedFrames);
    expect(list).toEqual(changedFrames);
    expect(copy.equals(guest)).toBe(true);
    expect(memory.copied).toBe(4 * PAGE_SIZE); // frames 64·30 and 64·30 + 63 share a page
  });

  it('finds nothing and copies nothing when nothing changed', () => {
    const copy = Buffer.from(guest);
    const memory = memoryOf(guest);
    const changed = new Uint8Array(frames);
    expect(refreshCopy(memory, ranges, copy, STRIDE, changed)).toBe(0);
    expect(changed.every((c) => c === 0)).toBe(true);
    expect(memory.copied).toBe(0);
  });
});

describe('framesToRedo', () => {
  // 64 frames: a free block of order 3 at 16, a compound of order 2 at 40 (head 40, tails 41–43), the rest alone.
  const head = Uint32Array.from({ length: 64 }, (_, i) => i);
  const order = new Uint8Array(64);
  head.fill(16, 16, 24);
  order.fill(3, 16, 24);
  head.fill(40, 40, 44);
  order.fill(2, 40, 44);
  const redoOf = (...frames: number[]) => {
    const redo = new Uint8Array(64);
    const list = framesToRedo(frames, { head, order }, redo);
    // The list is the marks, ascending.
    expect([...list]).toEqual([...redo.keys()].filter((f) => redo[f] === 1));
    return { marked: list.length, frames: [...list] };
  };

  it('brings a changed frame alone when it was in no block', () => {
    expect(redoOf(5)).toEqual({ marked: 1, frames: [5] });
  });

  it('brings the whole free block a changed frame was in, from its head', () => {
    expect(redoOf(21).frames).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
  });

  it("brings a changed tail's whole compound, head first, and a changed head's tails", () => {
    expect(redoOf(42).frames).toEqual([40, 41, 42, 43]);
    expect(redoOf(40).frames).toEqual([40, 41, 42, 43]);
  });

  it('counts each frame once when blocks and frames overlap', () => {
    expect(redoOf(16, 17, 5, 43)).toEqual({ marked: 13, frames: [5, 16, 17, 18, 19, 20, 21, 22, 23, 40, 41, 42, 43] });
  });
});
