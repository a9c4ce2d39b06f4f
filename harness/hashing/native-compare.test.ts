/** The native compare across guests gives what the JS compare gives, and finds a difference in a page's last byte. */
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../vocabulary.ts';
import { compareAcrossGuests, compareEngineName, compareSomeAcrossGuests, partitionAcrossGuests } from './native-compare.ts';
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

  it('partitions the pages that differ into classes of identical bytes, natively as in JS', () => {
    // 5 guests, 4 pages: page 0 alike everywhere; page 1: guests 0,1,3 alike, 2 and 4 alike; page 2: all differ;
    // page 3: guest 0 alone, 1–4 alike.
    const vs = views(5, 4);
    vs[2]![PAGE_SIZE + 10]! ^= 1;
    vs[4]![PAGE_SIZE + 10]! ^= 1;
    for (let g = 1; g < 5; g++) vs[g]![2 * PAGE_SIZE + 4095]! ^= g;
    vs[0]![3 * PAGE_SIZE]! ^= 0x40;
    const firstDiff = new Uint16Array(4);
    compareAcrossGuests(vs, 4, firstDiff);
    expect([...firstDiff]).toEqual([0, 2, 1, 1]);
    const outcomes = (['native', 'js'] as const).map((engine) => {
      const representative = new Uint16Array(4 * 5).fill(99);
      const paired = new Uint8Array(4).fill(7);
      const figures = partitionAcrossGuests(vs, 4, firstDiff, representative, paired, engine);
      return { figures, representative: [...representative], paired: [...paired] };
    });
    const [native, js] = outcomes;
    expect(native!.representative).toEqual([99, 99, 99, 99, 99, 0, 0, 2, 0, 2, 0, 1, 2, 3, 4, 0, 1, 1, 1, 1]);
    expect(native!.paired).toEqual([7, 1, 0, 1]);
    // Page 1: guests 2, 3 (against 0; 3 matches), 4 (against 0, then 2); page 2: 1 + 2 + 3 + 4; page 3: 1 + 2 + 2 + 2.
    expect(native!.figures).toEqual({ paired: 2, bytesCompared: PAGE_SIZE * (1 + 1 + 2 + 10 + 7) });
    expect(js).toEqual(native);
  });

  it('compares only the pages asked for, in one call, natively as in JS', () => {
    const vs = views(3, 6);
    vs[1]![PAGE_SIZE]! ^= 1; // page 1 differs in guest 1 (asked for)
    vs[2]![3 * PAGE_SIZE]! ^= 1; // page 3 differs in guest 2 (not asked for: reads as 0)
    vs[2]![5 * PAGE_SIZE + 9]! ^= 1; // page 5 differs in guest 2 (asked for)
    const which = Uint8Array.from([1, 1, 0, 0, 1, 1]);
    const outcomes = (['native', 'js'] as const).map((engine) => {
      const firstDiff = new Uint16Array(6).fill(9);
      return { figures: compareSomeAcrossGuests(vs, 6, which, firstDiff, engine), firstDiff: [...firstDiff] };
    });
    expect(outcomes[0]).toEqual({ figures: { identical: 2, bytesCompared: PAGE_SIZE * (2 + 1 + 2 + 2) }, firstDiff: [0, 1, 0, 0, 0, 2] });
    expect(outcomes[1]).toEqual(outcomes[0]);
  });
});
