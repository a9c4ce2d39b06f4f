/**
 * Anonymous memory marked MADV_MERGEABLE, so that ksmd has something to scan in a test whatever else runs
 * on the host (with nothing mergeable, ksmd sleeps and its counters stand still). Through libc with koffi:
 * Node has no mmap or madvise.
 */
import koffi from 'koffi';
import { loadLibc, mapOrThrow, MADV_MERGEABLE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../util/libc.ts';

const PAGE_SIZE = 4096;

export class MergeableMemory {
  private pointer: unknown;

  private constructor(readonly pages: number) {}

  /** `pages` pages of private anonymous memory, each filled with `byte` (so all are identical), marked mergeable. */
  static allocate(pages: number, byte: number): MergeableMemory {
    const memory = new MergeableMemory(pages);
    const c = loadLibc();
    const bytes = pages * PAGE_SIZE;
    const pointer = mapOrThrow(bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 'mergeable test memory');
    memory.pointer = pointer;
    new Uint8Array(koffi.view(pointer, bytes)).fill(byte);
    if (c.madvise(pointer, bytes, MADV_MERGEABLE) !== 0) {
      const errno = koffi.errno();
      memory.free();
      throw new Error(`madvise(MADV_MERGEABLE) failed (errno ${errno}): is the kernel built with CONFIG_KSM?`);
    }
    return memory;
  }

  free(): void {
    if (this.pointer === undefined) return;
    loadLibc().munmap(this.pointer, this.pages * PAGE_SIZE);
    this.pointer = undefined;
  }
}
