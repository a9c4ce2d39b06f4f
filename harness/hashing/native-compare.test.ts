/** The native compare across guests gives what the JS compare gives, and finds a difference in a page's last byte. */
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../vocabulary.ts';
import { compareAcrossGuests, compareEngineName } from './native-compare.ts';
import { nativeScanEngine } from './native-scan-engine.ts';

function views(guests: number, pages: number): Buffer[] {
  return Array.from({ length: guests }, () => {
    const view = Buffer.alloc(pages * PAGE_SIZE);
    for (let i = 0; i < view.length; i++) view[i] = (i * 7 + (i >> 12)) & 0xff;
    return view;
  });
}

describe('pages compared across guests', () => {
  it('names the first guest that differs, 0 where all are identical; the same figures natively and in JS', () => {
    const vs = views(4, 6);
    vs[2]![2 * PAGE_SIZE + PAGE_SIZE - 1]! ^= 1; // guest 2, page 2: its last byte
    vs[1]![4 * PAGE_SIZE]! ^= 0x80; // guest 1, page 4: its first byte
    vs[3]![4 * PAGE_SIZE + 100]! ^= 2; // and guest 3 too (not reached: guest 1 already differs)
    vs[3]![5 * PAGE_SIZE + 2048]! ^= 4; // guest 3, page 5
    const native = new Uint16Array(6);
    const js = new Uint16Array(6);
    const a = compareAcrossGuests(vs, 6, native);
    const b = compareAcrossGuests(vs, 6, js, 'js');
    expect([...native]).toEqual([0, 0, 2, 0, 1, 3]);
    expect([...js]).toEqual([...native]);
    expect(a).toEqual({ identical: 3, bytesCompared: PAGE_SIZE * (3 + 3 + 2 + 3 + 1 + 3) });
    expect(b).toEqual(a);
    // Where gcc builds the C (as the scan engine's), the native compare is the one that ran.
    if (nativeScanEngine().engine) expect(compareEngineName()).toMatch(/^native/);
  });

  it('reads only the pages asked for, from views of any offset', () => {
    const [a, b] = views(2, 4);
    b![3 * PAGE_SIZE]! ^= 1; // beyond the range compared
    const firstDiff = new Uint16Array(2);
    expect(compareAcrossGuests([a!.subarray(PAGE_SIZE), b!.subarray(PAGE_SIZE)], 2, firstDiff)).toEqual({ identical: 2, bytesCompared: 2 * PAGE_SIZE });
    expect(() => compareAcrossGuests([a!, b!], 5, new Uint16Array(5))).toThrow(RangeError);
  });
});
