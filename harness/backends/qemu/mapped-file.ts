/**
 * A read-only shared mapping of a guest's RAM file, through libc's mmap called with koffi (Node has no mmap).
 * pages() returns Buffers that alias the guest's memory: no copy, and they show the guest's writes live.
 * Such views are invalid after close() — touching one then would crash the process — so close() is only
 * called by the backend's teardown, after every strategy is done.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import { loadLibc, mapOrThrow, MAP_SHARED, PROT_READ } from '../../util/libc.ts';
import { PAGE_SIZE } from '../../vocabulary.ts';

export class MappedFile {
  private pointer: unknown;
  private view: Buffer | undefined;

  private constructor(
    readonly file: string,
    readonly bytes: number,
  ) {}

  /** Map the first `bytes` of file read-only and shared (the file must be at least that large). */
  static open(file: string, bytes: number): MappedFile {
    const mapped = new MappedFile(file, bytes);
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size < bytes) throw new Error(`${file} has ${size} bytes, expected at least ${bytes}`);
      const pointer = mapOrThrow(bytes, PROT_READ, MAP_SHARED, fd, file);
      mapped.pointer = pointer;
      mapped.view = Buffer.from(koffi.view(pointer, bytes));
    } finally {
      fs.closeSync(fd); // the mapping keeps the file alive; the descriptor is not needed
    }
    return mapped;
  }

  get isOpen(): boolean {
    return this.view !== undefined;
  }

  /** A zero-copy view of pages [firstPage, firstPage + count). */
  pages(firstPage: number, count: number): Buffer {
    if (!this.view) throw new Error(`guest memory ${this.file} is closed`);
    const start = firstPage * PAGE_SIZE;
    const end = start + count * PAGE_SIZE;
    if (!Number.isInteger(firstPage) || !Number.isInteger(count) || firstPage < 0 || count < 0 || end > this.bytes) {
      throw new RangeError(`pages ${firstPage}+${count} are outside guest memory of ${this.bytes / PAGE_SIZE} pages`);
    }
    return this.view.subarray(start, end);
  }

  close(): void {
    if (!this.view) return;
    this.view = undefined;
    loadLibc().munmap(this.pointer, this.bytes);
    this.pointer = undefined;
  }
}
