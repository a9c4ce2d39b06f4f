import { describe, expect, it } from 'vitest';
import { COWPROBE_WRITTEN_WORD, cowprobePageBytes, parseCowprobe, waitForCowprobe } from './cowprobe.ts';
import { MemoryGuest } from '../testing/memory-guest.ts';

const ready = [
  'XME-COWPROBE gfns from=0 list=1a2b3,1a2b4,ff',
  '\r[    2.000] XME-COWPROBE gfns from=3 list=10000\r',
  'XME-COWPROBE ready pages=4 writes=2 same=1',
];

describe('parseCowprobe', () => {
  it('is empty before the probe prints anything', () => {
    expect(parseCowprobe(['XME-BOOTED release=r workload=cowprobe uptime=1.00', 'XME-PROGRESS t_ms=1000 ops=0 workload=cowprobe'])).toEqual({
      gfns: [],
      ready: false,
      written: false,
      notes: [],
      rung: false,
    });
  });

  it('collects hex frame numbers over several lines, dropping text before the marker', () => {
    expect(parseCowprobe(ready)).toEqual({
      gfns: [0x1a2b3, 0x1a2b4, 0xff, 0x10000],
      ready: true,
      written: false,
      pages: 4,
      writes: 2,
      same: 1,
      notes: [],
      rung: false,
    });
  });

  it('reads the doorbell frame and sees the ring', () => {
    const state = parseCowprobe(['XME-COWPROBE doorbell gfn=beef', ...ready, 'XME-COWPROBE rung']);
    expect(state).toMatchObject({ doorbellGfn: 0xbeef, ready: true, rung: true });
    expect(() => parseCowprobe(['XME-COWPROBE rung'])).toThrow(/rung before ready/);
  });

  it('is not ready while frame numbers are still coming', () => {
    const state = parseCowprobe(ready.slice(0, 1));
    expect(state.ready).toBe(false);
    expect(state.gfns).toEqual([0x1a2b3, 0x1a2b4, 0xff]);
  });

  it('sees the written line and keeps notes', () => {
    const state = parseCowprobe([
      'XME-COWPROBE note mlock failed: Cannot allocate memory',
      ...ready,
      'XME-PROGRESS t_ms=5000 ops=3 workload=cowprobe',
      'XME-COWPROBE written writes=2 same=1',
    ]);
    expect(state.written).toBe(true);
    expect(state.notes).toEqual(['mlock failed: Cannot allocate memory']);
  });

  it('refuses a missing or garbled chunk of frame numbers, and inconsistent lines', () => {
    expect(() => parseCowprobe([ready[1]!, ready[2]!])).toThrow(/from page 3, expected from page 0/);
    expect(() => parseCowprobe(['XME-COWPROBE gfns from=0 list=1a2,zz'])).toThrow(/garbled/);
    expect(() => parseCowprobe(['XME-COWPROBE gfns from=0 list=1a2,1a3', 'XME-COWPROBE ready pages=3 writes=1 same=0'])).toThrow(/2 frame numbers for 3 pages/);
    expect(() => parseCowprobe([...ready, 'XME-COWPROBE written writes=3 same=1'])).toThrow(/disagrees/);
    expect(() => parseCowprobe(['XME-COWPROBE written writes=2 same=1'])).toThrow(/before ready/);
    expect(() => parseCowprobe(['XME-COWPROBE bogus'])).toThrow(/unknown line/);
  });
});

describe('waitForCowprobe', () => {
  it('returns once the guest reports the state', async () => {
    const guest = new MemoryGuest('g0', 16);
    guest.printed = [...ready];
    setTimeout(() => guest.printed.push('XME-COWPROBE written writes=2 same=1'), 50);
    expect((await waitForCowprobe(guest, 'ready', 1000, 10)).gfns).toHaveLength(4);
    expect((await waitForCowprobe(guest, 'written', 1000, 10)).written).toBe(true);
  });

  it('fails on an XME-ERROR line and on the timeout', async () => {
    const guest = new MemoryGuest('g1', 16);
    guest.printed = ['XME-COWPROBE gfns from=0 list=1'];
    await expect(waitForCowprobe(guest, 'ready', 50, 10)).rejects.toThrow(/guest g1: cowprobe not ready within 0 s \(1 frame numbers, not ready\)/);
    guest.printed.push('XME-ERROR cowprobe: page 1: pagemap gives no frame number (needs CAP_SYS_ADMIN)');
    await expect(waitForCowprobe(guest, 'ready', 1000, 10)).rejects.toThrow(/guest g1: cowprobe failed: XME-ERROR cowprobe: page 1/);
  });

  it('fails when the guest has ended', async () => {
    const guest = new MemoryGuest('g2', 16);
    guest.alive = () => false;
    await expect(waitForCowprobe(guest, 'written', 1000, 10)).rejects.toThrow(/guest g2 ended before its cowprobe was written/);
  });
});

describe('cowprobePageBytes', () => {
  it('gives distinct, non-zero pages that a changing write changes in one word', () => {
    const pages = Array.from({ length: 8 }, (_, i) => cowprobePageBytes(i));
    expect(new Set(pages.map((page) => page.toString('hex'))).size).toBe(8);
    for (const page of pages) expect(page.some((byte) => byte !== 0)).toBe(true);
    expect(pages[0]!.readBigUInt64LE(0)).toBe(0x584d45434f570000n);
    // Values of xme-load.c's mix64 (compiled and printed): mix64(0*512+1), mix64(3*512+7).
    expect(pages[0]!.readBigUInt64LE(8)).toBe(0x910a2dec89025cc1n);
    expect(pages[3]!.readBigUInt64LE(7 * 8)).toBe(0x2fce09003f35fbb1n);
    const written = cowprobePageBytes(3, true);
    const differing = Array.from({ length: 512 }, (_, w) => w).filter((w) => written.readBigUInt64LE(w * 8) !== pages[3]!.readBigUInt64LE(w * 8));
    expect(differing).toEqual([COWPROBE_WRITTEN_WORD]);
  });
});
