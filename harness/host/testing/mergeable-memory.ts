/**
 * Anonymous memory marked MADV_MERGEABLE, so that ksmd has something to scan in a test whatever else runs
 * on the host (with nothing mergeable, ksmd sleeps and its counters stand still). Through libc with koffi:
 * Node has no mmap or madvise.
 */
import koffi from 'koffi';

const PAGE_SIZE = 4096;
const PROT_READ_WRITE = 0x1 | 0x2;
const MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
const MADV_MERGEABLE = 12;
const MAP_FAILED = 0xffffffffffffffffn;

interface Libc {
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  madvise: (addr: unknown, length: number, advice: number) => number;
  munmap: (addr: unknown, length: number) => number;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as Libc['mmap'],
    madvise: lib.func('int madvise(void *addr, size_t length, int advice)') as Libc['madvise'],
    munmap: lib.func('int munmap(void *addr, size_t length)') as Libc['munmap'],
  };
  return libc;
}

export class MergeableMemory {
  private pointer: unknown;

  private constructor(readonly pages: number) {}

  /** `pages` pages of private anonymous memory, each filled with `byte` (so all are identical), marked mergeable. */
  static allocate(pages: number, byte: number): MergeableMemory {
    const memory = new MergeableMemory(pages);
    const c = loadLibc();
    const bytes = pages * PAGE_SIZE;
    const pointer = c.mmap(null, bytes, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0);
    if (koffi.address(pointer) === MAP_FAILED || koffi.address(pointer) === 0n) throw new Error(`mmap failed (errno ${koffi.errno()})`);
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
