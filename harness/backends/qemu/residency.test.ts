import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../vocabulary.ts';
import { MappedFile } from './mapped-file.ts';
import { residentPages, type ResidencyMethod } from './residency.ts';

// Guest RAM lives on tmpfs; the point is tmpfs's behaviour, so test there (not os.tmpdir(), maybe a disk).
const SHM = '/dev/shm';
const haveShm = fs.existsSync(SHM) && fs.statSync(SHM).isDirectory();

let files: string[] = [];
afterEach(() => {
  for (const file of files) fs.rmSync(file, { force: true });
  files = [];
});

/** A sparse file of `pages` pages in /dev/shm with the given pages written (value per page; 0 writes zeros). */
function sparseFile(pages: number, written: Record<number, number>): string {
  const file = path.join(SHM, `xme-residency-test-${process.pid}-${files.length}`);
  files.push(file);
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.ftruncateSync(fd, pages * PAGE_SIZE);
    for (const [page, value] of Object.entries(written)) {
      fs.writeSync(fd, Buffer.alloc(PAGE_SIZE, value), 0, PAGE_SIZE, Number(page) * PAGE_SIZE);
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function expectedMap(pages: number, resident: number[]): Uint8Array {
  const map = new Uint8Array(pages);
  for (const page of resident) map[page] = 1;
  return map;
}

const METHODS: ResidencyMethod[] = ['seek', 'mincore'];

describe.skipIf(!haveShm).each(METHODS)('residentPages, method %s, on a tmpfs file', (method) => {
  const residency = (file: string | number, pages: number) => residentPages(file, pages, { method });

  it('gives the exact map: written pages (a page of zeros too) are resident, holes are not', () => {
    // 0: first page; 5: zeros (still allocated); 6,7: a run; 63: the last page.
    const file = sparseFile(64, { 0: 0x11, 5: 0, 6: 0x66, 7: 0x77, 63: 0xff });
    const { map, resident } = residency(file, 64);
    expect(map).toEqual(expectedMap(64, [0, 5, 6, 7, 63]));
    expect(resident).toBe(5);
  });

  it('takes an open descriptor, leaves it open and restores its file offset', () => {
    const file = sparseFile(16, { 3: 1, 4: 0 });
    fs.writeFileSync(
      file,
      Uint8Array.from({ length: 64 }, (_, i) => i),
      { flag: 'r+' },
    ); // page 0: 0, 1, 2, …
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, Buffer.alloc(10), 0, 10, null); // file offset now 10
      const { map, resident } = residency(fd, 16);
      expect(map).toEqual(expectedMap(16, [0, 3, 4]));
      expect(resident).toBe(3);
      const next = Buffer.alloc(1);
      fs.readSync(fd, next, 0, 1, null); // reads at the current file offset
      expect(next[0]).toBe(10);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a one-byte write makes its whole page resident', () => {
    const file = sparseFile(8, {});
    fs.writeFileSync(file, Buffer.from([1]), { flag: 'r+' }); // page 0
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([2]), 0, 1, 4 * PAGE_SIZE + 2000);
    fs.closeSync(fd);
    expect(residency(file, 8).map).toEqual(expectedMap(8, [0, 4]));
  });

  it('an untouched file is all holes; pages past its end are holes; a shorter count clips', () => {
    const empty = sparseFile(32, {});
    expect(residency(empty, 32)).toEqual({ map: new Uint8Array(32), resident: 0 });
    const file = sparseFile(8, { 2: 1, 7: 1 });
    expect(residency(file, 12).map).toEqual(expectedMap(12, [2, 7]));
    expect(residency(file, 5)).toEqual({ map: expectedMap(5, [2]), resident: 1 });
    expect(residency(file, 0)).toEqual({ map: new Uint8Array(0), resident: 0 });
  });

  it('refuses a bad page count and a missing file', () => {
    const file = sparseFile(4, {});
    expect(() => residency(file, -1)).toThrow(RangeError);
    expect(() => residency(file, 1.5)).toThrow(RangeError);
    expect(() => residency(path.join(SHM, `xme-residency-test-${process.pid}-missing`), 4)).toThrow(/ENOENT/);
  });
});

describe.skipIf(!haveShm)('residentPages: options, and what tmpfs does', () => {
  it('defaults to seek and refuses an unknown method', () => {
    const file = sparseFile(4, { 1: 1 });
    expect(residentPages(file, 4)).toEqual(residentPages(file, 4, { method: 'seek' }));
    expect(() => residentPages(file, 4, { method: 'pagemap' as ResidencyMethod })).toThrow(/unknown residency method/);
  });

  // Not a property of residentPages but of tmpfs, and the reason its result must be taken with care: a hole
  // READ through a mapping (MappedFile, what strategies see) becomes an allocated page; pread() does not.
  it('characterises tmpfs: reading a hole through the mapping allocates it, pread does not', () => {
    const file = sparseFile(8, { 0: 1 });
    const mapped = MappedFile.open(file, 8 * PAGE_SIZE);
    try {
      for (const method of METHODS) expect(residentPages(file, 8, { method }).map).toEqual(expectedMap(8, [0]));
      expect(mapped.pages(3, 1)[100]).toBe(0); // a read through the mapping
      const fd = fs.openSync(file, 'r');
      fs.readSync(fd, Buffer.alloc(PAGE_SIZE), 0, PAGE_SIZE, 5 * PAGE_SIZE); // a read through read(2)
      fs.closeSync(fd);
      for (const method of METHODS) expect(residentPages(file, 8, { method }).map).toEqual(expectedMap(8, [0, 3]));
    } finally {
      mapped.close();
    }
  });
});
