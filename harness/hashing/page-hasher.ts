/**
 * 64-bit hashes of 4 KiB pages. Native XXH3 from Debian's libxxhash (through koffi, called with the page's
 * address so that no Buffer object is made per page: ~13 GB/s on one core here), or XXH64 in WebAssembly
 * where the library is missing. A hash only proposes candidates: sharing is always confirmed byte by byte.
 */
import koffi from 'koffi';
import xxhashWasm from 'xxhash-wasm';
import { PAGE_SIZE } from '../vocabulary.ts';

export interface PageHasher {
  /** Recorded in run.json and in the CSV method columns, e.g. "xxh3-64 (libxxhash 0.8.1)". */
  readonly name: string;
  /** Hash each 4 KiB page of `pages` (its length a multiple of 4 KiB) into out[0..]. */
  hashPages(pages: Buffer, out: BigUint64Array): void;
  hashPage(page: Buffer): bigint;
}

/** koffi gives a uint64 back as a number when it fits in 53 bits, else as a bigint. */
type NativeXxh3 = (address: number, length: number) => bigint | number;

const asBigInt = (value: bigint | number): bigint => (typeof value === 'bigint' ? value : BigInt(value));

class NativeXxh3Hasher implements PageHasher {
  constructor(
    readonly name: string,
    private readonly xxh3: NativeXxh3,
  ) {}

  hashPages(pages: Buffer, out: BigUint64Array): void {
    const count = pages.length / PAGE_SIZE;
    if (out.length < count) throw new RangeError(`output holds ${out.length} hashes, ${count} pages given`);
    // The address of the Buffer's bytes: guest RAM views and large Buffers live outside the JS heap and
    // do not move, and `pages` is referenced until this loop ends.
    const base = Number(koffi.address(pages));
    for (let i = 0; i < count; i++) out[i] = asBigInt(this.xxh3(base + i * PAGE_SIZE, PAGE_SIZE));
  }

  hashPage(page: Buffer): bigint {
    return asBigInt(this.xxh3(Number(koffi.address(page)), page.length));
  }
}

class WasmXxh64Hasher implements PageHasher {
  readonly name = 'xxh64 (xxhash-wasm; libxxhash not found)';
  constructor(private readonly h64Raw: (input: Uint8Array, seed?: bigint) => bigint) {}

  hashPages(pages: Buffer, out: BigUint64Array): void {
    const count = pages.length / PAGE_SIZE;
    if (out.length < count) throw new RangeError(`output holds ${out.length} hashes, ${count} pages given`);
    for (let i = 0; i < count; i++) out[i] = this.h64Raw(pages.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  }

  hashPage(page: Buffer): bigint {
    return this.h64Raw(page);
  }
}

export function loadNativeHasher(): PageHasher | undefined {
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libxxhash.so.0');
  } catch {
    return undefined;
  }
  // Declared with uintptr_t instead of const void *: same register on x86-64, and it lets us pass
  // base + offset as a number rather than making a Buffer per page.
  const xxh3 = lib.func('uint64_t XXH3_64bits(uintptr_t input, size_t length)') as NativeXxh3;
  const versionNumber = (lib.func('unsigned int XXH_versionNumber(void)') as () => number)();
  const version = `${Math.floor(versionNumber / 10000)}.${Math.floor(versionNumber / 100) % 100}.${versionNumber % 100}`;
  return new NativeXxh3Hasher(`xxh3-64 (libxxhash ${version})`, xxh3);
}

export async function loadWasmHasher(): Promise<PageHasher> {
  const { h64Raw } = await xxhashWasm();
  return new WasmXxh64Hasher(h64Raw);
}

let chosen: Promise<PageHasher> | undefined;

/** Native XXH3 if libxxhash loads, else the WASM fallback. XME_HASHER=wasm forces the fallback. */
export function defaultHasher(): Promise<PageHasher> {
  chosen ??= (async () => (process.env.XME_HASHER !== 'wasm' && loadNativeHasher()) || loadWasmHasher())();
  return chosen;
}
