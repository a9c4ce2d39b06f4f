import { describe, expect, it } from 'vitest';
import { loadNativeHasher, loadWasmHasher, type PageHasher } from './page-hasher.ts';

const pages = Buffer.alloc(4 * 4096);
pages.fill(1, 4096, 8192);
pages.fill(1, 8192, 12288); // pages 1 and 2 equal
pages[3 * 4096 + 17] = 9;

async function hashers(): Promise<PageHasher[]> {
  const native = loadNativeHasher();
  // scripts/setup installs libxxhash0: on a set-up machine the native hasher must load.
  expect(native, 'libxxhash.so.0 should load (apt-get install libxxhash0)').toBeDefined();
  return [native!, await loadWasmHasher()];
}

describe('page hashers', () => {
  it('hash each page of a run like hashing it alone; equal pages equal hashes, others differ', async () => {
    for (const hasher of await hashers()) {
      const out = new BigUint64Array(4);
      hasher.hashPages(pages, out);
      for (let i = 0; i < 4; i++) expect(out[i]).toBe(hasher.hashPage(pages.subarray(i * 4096, (i + 1) * 4096)));
      expect(out[1]).toBe(out[2]);
      expect(new Set(out).size).toBe(3);
    }
  });

  it('name the algorithm they use', async () => {
    const [native, wasm] = await hashers();
    expect(native!.name).toMatch(/^xxh3-64 \(libxxhash \d+\.\d+\.\d+\)$/);
    expect(wasm!.name).toMatch(/^xxh64 \(xxhash-wasm/);
  });

  it('refuse an output array that is too short', async () => {
    for (const hasher of await hashers()) expect(() => hasher.hashPages(pages, new BigUint64Array(2))).toThrow(RangeError);
  });
});
