import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLibc, mapOrThrow, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ } from '../util/libc.ts';
import { FrameFlags, frameMultiplicity, NOT_PRESENT, readPageFrames, residencyFromFrames } from './page-frames.ts';

const PROT_WRITE = 0x2;
const PAGES = 8;

// Real kernel behaviour, on this process's own anonymous memory (the harness reads QEMU's the same way).
describe('host page frames (pagemap, kpageflags)', () => {
  const pointer = mapOrThrow(PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 'test memory');
  const address = Number(koffi.address(pointer));
  const view = Buffer.from(koffi.view(pointer, PAGES * 4096));
  const flags = new FrameFlags();
  afterAll(() => {
    flags.close();
    loadLibc().munmap(pointer, PAGES * 4096);
  });

  it('sees untouched pages as not present and written pages on frames of their own', () => {
    expect([...readPageFrames(process.pid, address, PAGES)]).toEqual(new Array(PAGES).fill(NOT_PRESENT));
    view[4 * 4096] = 1;
    view[5 * 4096] = 2;
    const frames = readPageFrames(process.pid, address, PAGES);
    expect(frames[4]).toBeGreaterThan(0);
    expect(frames[5]).toBeGreaterThan(0);
    expect(frames[4]).not.toBe(frames[5]);
    expect(flags.isZeroPage(frames[4]!)).toBe(false);
    expect(flags.isKsm(frames[4]!)).toBe(false);
    expect(frames[6]).toBe(NOT_PRESENT);
    expect([...residencyFromFrames(frames, flags)]).toEqual([0, 0, 0, 0, 1, 1, 0, 0]);
  });

  it('does not count pages on the zero page as resident (a frame mapped several times is looked up)', () => {
    // Which frame is the zero page is the kernel's; a read fault may or may not map it (on this host's kernel
    // it allocates), so the classification is checked with a known answer for one frame.
    const zeroFrame = 77;
    const lookups: number[] = [];
    const stub = { isZeroPage: (pfn: number) => (lookups.push(pfn), pfn === zeroFrame) } as unknown as FrameFlags;
    const frames = Float64Array.from([zeroFrame, 5, zeroFrame, NOT_PRESENT, 9, 9]);
    expect([...residencyFromFrames(frames, stub)]).toEqual([0, 1, 0, 0, 1, 1]);
    expect(frameMultiplicity([frames]).get(zeroFrame)).toBe(2);
    expect(lookups).not.toContain(5); // a frame mapped once is never looked up
  });

  it('refuses an address that is not page aligned', () => {
    expect(() => readPageFrames(process.pid, address + 1, 1)).toThrow(/not page aligned/);
  });
});
