/**
 * ProcessRam on real anonymous memory: this test process's own (the harness reads QEMU's the same way,
 * through /proc/<pid>/mem and pagemap).
 */
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { loadLibc, mapOrThrow, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../util/libc.ts';
import { NOT_PRESENT, readPageFrames } from '../../host/page-frames.ts';
import { ProcessRam } from './guest-ram.ts';

const PAGES = 8;
const BYTES = PAGES * 4096;

describe('anonymous guest RAM read from outside (ProcessRam)', () => {
  const pointer = mapOrThrow(BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 'test RAM');
  const address = Number(koffi.address(pointer));
  const memory = Buffer.from(koffi.view(pointer, BYTES));
  const ram = new ProcessRam(process.pid, address, BYTES);
  afterAll(() => {
    ram.close();
    loadLibc().munmap(pointer, BYTES);
  });

  it('reads pages as copies, knows which pages are resident, and never reads the others', () => {
    for (const page of [1, 2, 5]) memory.fill(page, page * 4096, (page + 1) * 4096);
    expect([...ram.residentPages()]).toEqual([0, 1, 1, 0, 0, 1, 0, 0]);
    expect(ram.pages(1, 2).equals(memory.subarray(4096, 3 * 4096))).toBe(true);

    const residency = ram.residentPages();
    ram.copyForTick(residency);
    // The tick's copy: resident pages as they were, the others zeros — and still not present (not read).
    expect(ram.pages(5, 1).every((b) => b === 5)).toBe(true);
    expect(ram.pages(0, 1).every((b) => b === 0)).toBe(true);
    const frames = readPageFrames(process.pid, address, PAGES);
    expect([frames[0], frames[3], frames[7]]).toEqual([NOT_PRESENT, NOT_PRESENT, NOT_PRESENT]);

    // A write after the copy is not seen until the copy is dropped: every strategy of a tick sees one instant.
    memory.fill(9, 2 * 4096, 3 * 4096);
    expect(ram.pages(2, 1).every((b) => b === 2)).toBe(true);
    ram.dropTickCopy();
    expect(ram.pages(2, 1).every((b) => b === 9)).toBe(true);

    // A page no longer resident at the next copy reads as zeros there (MADV_DONTNEED drops it).
    const MADV_DONTNEED = 4;
    expect(loadLibc().madvise(pointer, 4096 * 2, MADV_DONTNEED)).toBe(0); // pages 0-1
    ram.copyForTick(ram.residentPages());
    expect(ram.pages(1, 1).every((b) => b === 0)).toBe(true);
    expect(ram.pages(5, 1).every((b) => b === 5)).toBe(true);
    ram.dropTickCopy();
  });

  it('refuses pages outside guest memory', () => {
    expect(() => ram.pages(PAGES - 1, 2)).toThrow(RangeError);
  });
});
