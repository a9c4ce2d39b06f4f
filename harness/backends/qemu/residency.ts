/**
 * Which pages of a guest's RAM file are really backed on the host. Guest RAM is a tmpfs file (see
 * qemu-guest.ts); a page nobody ever wrote is a hole in it and costs the host nothing, so "frames saved" by
 * sharing such pages would free nothing on a real host.
 *
 * Two methods, through koffi (Node's fs has neither SEEK_DATA nor mincore); on tmpfs both give the same map
 * when the host has no swap. On tmpfs a page written with zeros is allocated; a hole is not.
 * - 'seek' (default): lseek(SEEK_DATA / SEEK_HOLE) walks the file's extents, two calls per run of allocated
 *   pages. Nothing is mapped. A page swapped out still counts (it is allocated, in swap). Cost grows with
 *   the number of runs: each koffi call costs a few µs, so ~14,000 scattered runs (256 MiB, 30% allocated
 *   at random) take ~60-110 ms, while a few hundred runs take ~1 ms.
 * - 'mincore': maps the file (read-only, never touched), one mincore(2) call, unmaps: ~2-3 ms for 256 MiB
 *   whatever the layout. Counts pages in RAM: a page swapped out counts as not resident.
 *
 * Caution: READING a hole through a mapping of a tmpfs file allocates it (shmem has no shared zero page;
 * MAP_SHARED and MAP_PRIVATE alike), whereas read(2)/pread(2) of a hole does not. So once anything has
 * read a page through MappedFile.pages() (e.g. the content strategy hashing all of guest RAM), that page is
 * allocated and shows as resident here. residency.test.ts pins this behaviour down.
 *
 * On a file system without SEEK_DATA support, 'seek' sees the whole file as data: every page resident.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import { PAGE_SIZE } from '../../vocabulary.ts';
import { loadLibc, mapOrThrow, MAP_SHARED, PROT_READ } from '../../util/libc.ts';

const SEEK_SET = 0;
const SEEK_CUR = 1;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

/** lseek that returns -1 with errno ENXIO as undefined ("no more data past offset") and throws otherwise. */
function seek(fd: number, offset: number, whence: number, what: string): number | undefined {
  const result = Number(loadLibc().lseek(fd, offset, whence));
  if (result >= 0) return result;
  const errno = koffi.errno();
  if (errno === ENXIO && (whence === SEEK_DATA || whence === SEEK_HOLE)) return undefined;
  throw new Error(`lseek(${what}, ${offset}, ${whence}) failed (errno ${errno})`);
}

export interface Residency {
  /** One byte per page: 1 = allocated on the host (data), 0 = hole (or past the end of the file). */
  map: Uint8Array;
  /** How many pages are 1 in map. */
  resident: number;
}

export type ResidencyMethod = 'seek' | 'mincore';

export interface ResidencyOptions {
  /** 'seek' (default): SEEK_DATA/SEEK_HOLE, allocated pages. 'mincore': pages in RAM, one call (see above). */
  method?: ResidencyMethod;
}

/**
 * Which of the first `pageCount` pages of a file are allocated. `file` is a path or an open file descriptor;
 * a descriptor is left open and its file offset is left where it was. Pages past the end of the file are
 * reported as holes. With 'seek', a page partly covered by data counts as resident (never happens on tmpfs,
 * which allocates whole pages).
 */
export function residentPages(file: string | number, pageCount: number, options: ResidencyOptions = {}): Residency {
  if (!Number.isSafeInteger(pageCount) || pageCount < 0) throw new RangeError(`page count ${pageCount} is not a non-negative integer`);
  const method = options.method ?? 'seek';
  if (method !== 'seek' && method !== 'mincore') throw new RangeError(`unknown residency method ${String(method)}`);
  const fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
  const what = typeof file === 'number' ? `fd ${file}` : file;
  try {
    return method === 'seek' ? bySeeking(fd, pageCount, what) : byMincore(fd, pageCount, what);
  } finally {
    if (typeof file !== 'number') fs.closeSync(fd);
  }
}

function bySeeking(fd: number, pageCount: number, what: string): Residency {
  const map = new Uint8Array(pageCount);
  let resident = 0;
  const savedOffset = seek(fd, 0, SEEK_CUR, what);
  try {
    const end = pageCount * PAGE_SIZE;
    let offset = 0;
    let marked = 0; // pages below this are already decided (extents never overlap, but partial pages could)
    while (offset < end) {
      const dataStart = seek(fd, offset, SEEK_DATA, what);
      if (dataStart === undefined || dataStart >= end) break;
      // There is always a hole at the end of a file, so SEEK_HOLE after data does not fail; be safe anyway.
      const holeStart = seek(fd, dataStart, SEEK_HOLE, what) ?? end;
      const first = Math.max(Math.floor(dataStart / PAGE_SIZE), marked);
      const last = Math.min(Math.ceil(holeStart / PAGE_SIZE), pageCount);
      if (last > first) {
        map.fill(1, first, last);
        resident += last - first;
        marked = last;
      }
      if (holeStart <= offset) break; // no progress: should not happen, but never loop forever
      offset = holeStart;
    }
  } finally {
    if (savedOffset !== undefined) seek(fd, savedOffset, SEEK_SET, what);
  }
  return { map, resident };
}

function byMincore(fd: number, pageCount: number, what: string): Residency {
  const map = new Uint8Array(pageCount);
  if (pageCount === 0) return { map, resident: 0 };
  const bytes = pageCount * PAGE_SIZE;
  const c = loadLibc();
  // Mapping past the end of the file is allowed; mincore reports those pages as not resident (never touched).
  const pointer = mapOrThrow(bytes, PROT_READ, MAP_SHARED, fd, what);
  try {
    if (c.mincore(pointer, bytes, map) !== 0) throw new Error(`mincore on ${what} failed (errno ${koffi.errno()})`);
  } finally {
    c.munmap(pointer, bytes);
  }
  let resident = 0;
  for (let page = 0; page < pageCount; page++) {
    const bit = map[page]! & 1; // the other bits are reserved
    map[page] = bit;
    resident += bit;
  }
  return { map, resident };
}
