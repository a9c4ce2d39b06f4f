/**
 * The libc functions xme calls through koffi (Node has no mmap, mincore, SEEK_DATA, thread clocks or pipe), loaded
 * once for the whole process. Each binding is declared where its C signature is written down, here.
 */
import koffi from 'koffi';

export const PROT_READ = 0x1;
export const MAP_SHARED = 0x1;
export const MAP_PRIVATE = 0x2;
export const MAP_ANONYMOUS = 0x20;
export const MAP_FAILED = 0xffffffffffffffffn;
export const PROT_WRITE = 0x2;
export const MADV_MERGEABLE = 12;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export interface Libc {
  lseek: (fd: number, offset: number, whence: number) => number | bigint;
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
  mincore: (addr: unknown, length: number, vec: Uint8Array) => number;
  madvise: (addr: unknown, length: number, advice: number) => number;
  pipe2: (fds: Int32Array, flags: number) => number;
}

let libc: Libc | undefined;

export function loadLibc(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    // off_t is 64 bits on x86-64 Linux.
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as Libc['lseek'],
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as Libc['mmap'],
    munmap: lib.func('int munmap(void *addr, size_t length)') as Libc['munmap'],
    mincore: lib.func('int mincore(void *addr, size_t length, _Out_ uint8_t *vec)') as Libc['mincore'],
    madvise: lib.func('int madvise(void *addr, size_t length, int advice)') as Libc['madvise'],
    pipe2: lib.func('int pipe2(_Out_ int *pipefd, int flags)') as Libc['pipe2'],
  };
  return libc;
}

/** mmap that throws with errno instead of returning MAP_FAILED. */
export function mapOrThrow(length: number, prot: number, flags: number, fd: number, what: string): unknown {
  const pointer = loadLibc().mmap(null, length, prot, flags, fd, 0);
  if (koffi.address(pointer) === MAP_FAILED || koffi.address(pointer) === 0n) {
    throw new Error(`mmap of ${what} failed (errno ${koffi.errno()})`);
  }
  return pointer;
}

/** A pipe, [read end, write end], as plain file descriptors (Node has no pipe()): flags O_CLOEXEC, O_NONBLOCK. */
export function pipeOrThrow(flags: number, what: string): [number, number] {
  const fds = new Int32Array(2);
  if (loadLibc().pipe2(fds, flags) !== 0) throw new Error(`pipe2 for ${what} failed (errno ${koffi.errno()})`);
  return [fds[0]!, fds[1]!];
}
