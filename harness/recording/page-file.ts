/**
 * One guest's memory at one tick, as a file of a recording (docs/recording.md): sparse (pages the host never
 * backed and all-zero pages are a class byte each, not stored) and compressed (Brotli, in chunks of up to
 * CHUNK_PAGES stored pages, so that neither writing nor reading needs one buffer of the whole guest).
 *
 *   "XMEPAGES" · u32 version · u32 header length H · header JSON (H bytes)
 *   u32 length · compressed class map (one byte per guest page: 0 hole, 1 zero, 2 stored)
 *   then per chunk: u32 length · compressed stored pages, in guest-frame order
 *
 * Integers are little-endian. The recording's manifest keeps each file's size and sha256; decode() also checks
 * the structure (every length inside the file, every chunk decompressing to exactly its pages, nothing after
 * the last one), so that a truncated or altered file is refused with a reason, never scored.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import type { Guest } from '../backends/types.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import { XmeError, errorMessage } from '../util/errors.ts';

export const PAGE_FILE_MAGIC = 'XMEPAGES';
export const PAGE_FILE_VERSION = 1;
/** 1 MiB of stored pages per chunk. */
export const CHUNK_PAGES = 256;
/**
 * Brotli at quality 0: recording happens while the guests are paused, so speed beats size. Measured on memchurn
 * guest pages (loaded 2-core host): Brotli q0 277 MiB/s at 2.65×, q1 172 MiB/s at 2.78×, deflate level 1
 * 53 MiB/s at 2.85×.
 */
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 0 } };
export const PAGE_FILE_CODEC = 'brotli';

export const PAGE_CLASS = { hole: 0, zero: 1, stored: 2 } as const;

export interface PageCounts {
  /** Pages the host did not back (never touched): all zeros, never read. */
  holes: number;
  /** Backed pages that are all zeros. */
  zero: number;
  /** Pages whose bytes are in the file. */
  stored: number;
}

interface PageFileHeader {
  guest: string;
  codec: typeof PAGE_FILE_CODEC;
  memoryPages: number;
  chunkPages: number;
  counts: PageCounts;
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
const compress = promisify(zlib.brotliCompress);

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
}

/** Runs of consecutive pages to read, never through a hole (reading a hole makes the host back it). */
function* readableRuns(memoryPages: number, residency: Uint8Array | undefined): Generator<{ first: number; count: number }> {
  let gfn = 0;
  while (gfn < memoryPages) {
    if (residency && residency[gfn] === 0) {
      gfn++;
      continue;
    }
    const first = gfn;
    while (gfn < memoryPages && gfn - first < CHUNK_PAGES && !(residency && residency[gfn] === 0)) gfn++;
    yield { first, count: gfn - first };
  }
}

/**
 * Encode a guest's memory as it is now (the caller has paused it and keeps it paused until this resolves).
 * `residency` marks the pages the host backs (undefined: every page is backed, as on Xen); holes are recorded as
 * such and never read. Pages are copied out at once; chunks are compressed on libuv's thread pool, in parallel.
 */
export async function encodePageFile(guest: Guest, residency: Uint8Array | undefined): Promise<{ file: Buffer; counts: PageCounts }> {
  const memoryPages = guest.memoryPages;
  if (residency && residency.length !== memoryPages) throw new Error(`residency of ${guest.id} has ${residency.length} pages, the guest ${memoryPages}`);
  const classes = new Uint8Array(memoryPages); // holes stay 0
  const counts: PageCounts = { holes: 0, zero: 0, stored: 0 };
  const chunks: Promise<Buffer>[] = [];
  let pending: Buffer[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    chunks.push(compress(Buffer.concat(pending), BROTLI));
    pending = [];
  };
  for (const run of readableRuns(memoryPages, residency)) {
    const bytes = guest.pages(run.first, run.count);
    for (let i = 0; i < run.count; i++) {
      const page = bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      if (page.equals(ZERO_PAGE)) {
        classes[run.first + i] = PAGE_CLASS.zero;
        counts.zero++;
        continue;
      }
      classes[run.first + i] = PAGE_CLASS.stored;
      counts.stored++;
      pending.push(page); // Buffer.concat in flush() copies it: pages() may be a view that the next call reuses
      if (pending.length === CHUNK_PAGES) flush();
    }
  }
  flush();
  counts.holes = memoryPages - counts.zero - counts.stored;
  const header: PageFileHeader = { guest: guest.id, codec: PAGE_FILE_CODEC, memoryPages, chunkPages: CHUNK_PAGES, counts };
  const headerBytes = Buffer.from(JSON.stringify(header));
  const classData = zlib.brotliCompressSync(classes, BROTLI);
  const versionBytes = u32(PAGE_FILE_VERSION);
  const compressed = (await Promise.all(chunks)).flatMap((data) => [u32(data.length), data]);
  const file = Buffer.concat([
    Buffer.from(PAGE_FILE_MAGIC, 'latin1'),
    versionBytes,
    u32(headerBytes.length),
    headerBytes,
    u32(classData.length),
    classData,
    ...compressed,
  ]);
  return { file, counts };
}

/** A page file that cannot be what it claims: named, with the reason. */
export class CorruptPageFileError extends XmeError {}

/** Reads a page file's sections, failing with the file's name and what is wrong. */
class Cursor {
  private at = 0;
  constructor(
    private readonly data: Buffer,
    private readonly name: string,
  ) {}

  fail(problem: string): never {
    throw new CorruptPageFileError(`recording file ${this.name} is corrupt: ${problem}`, 'record the run again; a damaged recording is never scored');
  }

  take(length: number, what: string): Buffer {
    if (this.at + length > this.data.length) this.fail(`it ends inside ${what} (truncated: ${this.data.length} bytes, ${what} needs ${this.at + length})`);
    const out = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  u32(what: string): number {
    return this.take(4, what).readUInt32LE();
  }

  get done(): boolean {
    return this.at === this.data.length;
  }

  decompress(what: string, expectedBytes: number): Buffer {
    const data = this.take(this.u32(`the length of ${what}`), what);
    let out: Buffer;
    try {
      out = zlib.brotliDecompressSync(data, { maxOutputLength: Math.max(1, expectedBytes) });
    } catch (error) {
      this.fail(`${what} does not decompress (${errorMessage(error)})`);
    }
    if (out.length !== expectedBytes) this.fail(`${what} decompresses to ${out.length} bytes, not ${expectedBytes}`);
    return out;
  }
}

function parseHeader(text: string, cursor: Cursor): PageFileHeader {
  try {
    return JSON.parse(text) as PageFileHeader;
  } catch (error) {
    return cursor.fail(`its header is not JSON (${errorMessage(error)})`);
  }
}

/**
 * Decode a page file into `target` (the guest's whole memory, memoryPages × 4 KiB, overwritten: holes and zero
 * pages become zeros) and return the class map. `name` is for error messages.
 */
export function decodePageFile(
  data: Buffer,
  name: string,
  expected: { guest: string; memoryPages: number },
  target: Buffer,
): { classes: Uint8Array; counts: PageCounts } {
  const cursor = new Cursor(data, name);
  if (cursor.take(8, 'the magic').toString('latin1') !== PAGE_FILE_MAGIC) cursor.fail(`it does not start with ${PAGE_FILE_MAGIC}`);
  const version = cursor.u32('the version');
  if (version !== PAGE_FILE_VERSION) cursor.fail(`format version ${version}; this xme reads version ${PAGE_FILE_VERSION}`);
  const headerText = cursor.take(cursor.u32('the header length'), 'the header').toString('utf8');
  const header = parseHeader(headerText, cursor);
  if (header.guest !== expected.guest || header.memoryPages !== expected.memoryPages) {
    cursor.fail(`it holds guest ${header.guest} with ${header.memoryPages} pages, the manifest says ${expected.guest} with ${expected.memoryPages}`);
  }
  if (header.codec !== PAGE_FILE_CODEC) cursor.fail(`codec ${JSON.stringify(header.codec)}; this xme reads ${PAGE_FILE_CODEC}`);
  if (!Number.isInteger(header.chunkPages) || header.chunkPages < 1) cursor.fail(`chunkPages ${header.chunkPages} is not a positive whole number`);
  if (target.length !== header.memoryPages * PAGE_SIZE) throw new RangeError(`target of ${target.length} bytes for ${header.memoryPages} pages`);
  const classes = new Uint8Array(cursor.decompress('the class map', header.memoryPages));
  const counts: PageCounts = { holes: 0, zero: 0, stored: 0 };
  const stored: number[] = [];
  for (let gfn = 0; gfn < classes.length; gfn++) {
    const kind = classes[gfn];
    if (kind === PAGE_CLASS.hole) counts.holes++;
    else if (kind === PAGE_CLASS.zero) counts.zero++;
    else if (kind === PAGE_CLASS.stored) counts.stored++, stored.push(gfn);
    else cursor.fail(`page ${gfn} has class ${kind} (0 hole, 1 zero, 2 stored)`);
  }
  if (counts.holes !== header.counts?.holes || counts.zero !== header.counts?.zero || counts.stored !== header.counts?.stored) {
    cursor.fail(`its class map counts ${JSON.stringify(counts)}, its header ${JSON.stringify(header.counts)}`);
  }
  target.fill(0);
  for (let first = 0; first < stored.length; first += header.chunkPages) {
    const count = Math.min(header.chunkPages, stored.length - first);
    const chunk = cursor.decompress(`the chunk of stored pages ${first}–${first + count - 1}`, count * PAGE_SIZE);
    for (let i = 0; i < count; i++) chunk.copy(target, stored[first + i]! * PAGE_SIZE, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
  }
  if (!cursor.done) cursor.fail('it has bytes after its last chunk');
  return { classes, counts };
}
