/**
 * The `cowprobe` workload's console protocol (guest-images/init/xme-load.c): a known-answer copy-on-write
 * workload, so that tests can check that CoW write-fault counts are exact.
 *
 * The guest fills `pages` locked anonymous pages with bytes that depend only on the page index (the same in
 * every guest, different between pages, never zero) and prints their guest-physical frame numbers:
 *
 *   XME-COWPROBE gfns from=<index of the first page on the line> list=<hex gfn>,<hex gfn>,...   (< 900 chars)
 *   XME-COWPROBE ready pages=K writes=N same=M
 *
 * `delay_ms` after "ready" it writes pages 0..N-1 once each (`gap_ms` apart; one 8-byte word gets a new
 * value, also a function of the page index only), then pages N..N+M-1 once each with the bytes already there
 * (a write a hypervisor sees but a content re-read cannot), then prints
 *
 *   XME-COWPROBE written writes=N same=M
 *
 * XME-PROGRESS lines continue throughout (ops = writes done, changing and same-bytes). Lines
 * `XME-COWPROBE note …` tell of best-effort steps that failed (mlock, madvise, compaction setting); the probe
 * reports `XME-ERROR cowprobe: …` and stops if pagemap gives no frame number, and before "written" if a page
 * moved to another frame since "ready".
 */
import { errorMessage, XmeError } from '../util/errors.ts';
import type { GuestConsole } from './console-protocol.ts';

/**
 * What the probe's driver needs of a guest (a backends/types.ts Guest has it): its console, a way to write the
 * doorbell as a device would, and whether it still runs. Narrow, so that workloads need no backend.
 */
export interface CowprobeGuest {
  readonly id: string;
  readonly files: Readonly<Record<string, string>>;
  readonly console?: GuestConsole;
  readonly deviceWrite?: { writeMemory(gfn: number, offset: number, bytes: Buffer): Promise<void> };
  alive(): boolean;
}
import { PAGE_SIZE } from '../vocabulary.ts';

export const COWPROBE_PREFIX = 'XME-COWPROBE';

const MASK64 = (1n << 64n) - 1n;
const WORDS = BigInt(PAGE_SIZE / 8);
/** The 8-byte word (index in the page) that a changing write changes. */
export const COWPROBE_WRITTEN_WORD = 1;

/** splitmix64, as xme-load's mix64. */
function mix64(value: bigint): bigint {
  let x = (value + 0x9e3779b97f4a7c15n) & MASK64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return x ^ (x >> 31n);
}

/**
 * The bytes of probe page `index` as xme-load fills it (the same in every guest): before its writes, or after
 * its changing write (`written`; a same-bytes write leaves the page as it was).
 */
export function cowprobePageBytes(index: number, written = false): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  const i = BigInt(index);
  page.writeBigUInt64LE(0x584d45434f570000n ^ (i & 0xffffn) ^ ((i >> 16n) << 48n), 0);
  for (let j = 1; j < PAGE_SIZE / 8; j++) page.writeBigUInt64LE(mix64(i * WORDS + BigInt(j)), j * 8);
  if (written) page.writeBigUInt64LE(~mix64(i * WORDS + BigInt(COWPROBE_WRITTEN_WORD)) & MASK64, COWPROBE_WRITTEN_WORD * 8);
  return page;
}

export interface CowprobeState {
  /** Guest frame number of probe page i, in page order (complete once `ready`). */
  gfns: number[];
  ready: boolean;
  written: boolean;
  /** From the "ready" line. */
  pages?: number;
  /** Pages 0..writes-1 get a changing write. */
  writes?: number;
  /** Pages writes..writes+same-1 get a write of the bytes already there. */
  same?: number;
  /** `XME-COWPROBE note …` lines: best-effort steps that failed in the guest. */
  notes: string[];
  /** doorbell=1: the frame of the page the harness rings to start the writes (ringCowprobe). */
  doorbellGfn?: number;
  /** The guest saw the ring (writes have begun). */
  rung: boolean;
}

/** What the harness stores in word 0 of the doorbell page ("XMEGO!!\0" little-endian; xme-load.c COWPROBE_RING). */
export const COWPROBE_RING = 0x00212147454d58n;
const DOORBELL = /^XME-COWPROBE doorbell gfn=([0-9a-f]+)\s*$/;

/** Start the writes of a cowprobe run with doorbell=1: store the ring value into its doorbell page. */
export async function ringCowprobe(guest: CowprobeGuest, probe: CowprobeState): Promise<void> {
  if (probe.doorbellGfn === undefined) throw new XmeError(`guest ${guest.id}: its cowprobe has no doorbell (start it with doorbell=1)`);
  if (!guest.deviceWrite) throw new XmeError(`guest ${guest.id}: this backend cannot write guest memory, so it cannot ring the cowprobe doorbell`);
  const word = Buffer.alloc(8);
  word.writeBigUInt64LE(COWPROBE_RING);
  await guest.deviceWrite.writeMemory(probe.doorbellGfn, 0, word);
}

const GFNS = /^XME-COWPROBE gfns from=(\d+) list=([0-9a-f]+(?:,[0-9a-f]+)*)\s*$/;
const READY = /^XME-COWPROBE ready pages=(\d+) writes=(\d+) same=(\d+)\s*$/;
const WRITTEN = /^XME-COWPROBE written writes=(\d+) same=(\d+)\s*$/;

/**
 * The probe's state from its console lines (others are ignored; text before the marker on a line is dropped).
 * Throws on a garbled or out-of-order XME-COWPROBE line: a probe with a missing frame number is no known answer.
 */
export function parseCowprobe(lines: readonly string[]): CowprobeState {
  const state: CowprobeState = { gfns: [], ready: false, written: false, notes: [], rung: false };
  for (const raw of lines) {
    const at = raw.indexOf(COWPROBE_PREFIX);
    if (at < 0) continue;
    const line = raw.slice(at).replace(/\r/g, '');
    const kind = line.slice(COWPROBE_PREFIX.length + 1).split(' ', 1)[0];
    if (kind === 'note') {
      state.notes.push(line.slice(COWPROBE_PREFIX.length + 6));
      continue;
    }
    if (kind === 'gfns') {
      const match = GFNS.exec(line);
      if (!match) throw new Error(`cowprobe: garbled line: ${line}`);
      const from = Number(match[1]);
      if (from !== state.gfns.length) throw new Error(`cowprobe: frame numbers from page ${from}, expected from page ${state.gfns.length}: ${line}`);
      if (state.ready) throw new Error(`cowprobe: frame numbers after the ready line: ${line}`);
      for (const hex of match[2]!.split(',')) state.gfns.push(Number.parseInt(hex, 16));
    } else if (kind === 'doorbell') {
      const match = DOORBELL.exec(line);
      if (!match) throw new Error(`cowprobe: garbled line: ${line}`);
      state.doorbellGfn = Number.parseInt(match[1]!, 16);
    } else if (kind === 'rung') {
      if (!state.ready) throw new Error(`cowprobe: rung before ready: ${line}`);
      state.rung = true;
    } else if (kind === 'ready') {
      const match = READY.exec(line);
      if (!match) throw new Error(`cowprobe: garbled line: ${line}`);
      if (state.ready) throw new Error(`cowprobe: a second ready line: ${line}`);
      state.pages = Number(match[1]);
      state.writes = Number(match[2]);
      state.same = Number(match[3]);
      if (state.gfns.length !== state.pages) {
        throw new Error(`cowprobe: ready with ${state.gfns.length} frame numbers for ${state.pages} pages`);
      }
      state.ready = true;
    } else if (kind === 'written') {
      const match = WRITTEN.exec(line);
      if (!match) throw new Error(`cowprobe: garbled line: ${line}`);
      if (!state.ready) throw new Error(`cowprobe: written before ready: ${line}`);
      if (Number(match[1]) !== state.writes || Number(match[2]) !== state.same) {
        throw new Error(`cowprobe: written line disagrees with the ready line (writes=${state.writes} same=${state.same}): ${line}`);
      }
      state.written = true;
    } else {
      throw new Error(`cowprobe: unknown line: ${line}`);
    }
  }
  return state;
}

/**
 * Poll the guest's console until the probe is `ready` (frame numbers known, writes not begun) or `written`
 * (all writes done). Throws, with the guest and the reason, on an XME-ERROR line, a garbled probe line, a guest
 * that ended, or the timeout.
 */
export async function waitForCowprobe(guest: CowprobeGuest, state: 'ready' | 'written', timeoutMs: number, pollMs = 100): Promise<CowprobeState> {
  const deadline = Date.now() + timeoutMs;
  const log = guest.files.serialLog ?? guest.files.console;
  const hint = log ? `console log: ${log}` : undefined;
  const guestConsole = guest.console;
  if (!guestConsole) throw new XmeError(`guest ${guest.id}: this backend gives no console, so the cowprobe's lines cannot be read`);
  for (;;) {
    const error = guestConsole.lines('XME-ERROR')[0];
    if (error) throw new XmeError(`guest ${guest.id}: cowprobe failed: ${error}`, hint);
    let current: CowprobeState;
    try {
      current = parseCowprobe(guestConsole.lines(COWPROBE_PREFIX));
    } catch (e) {
      throw new XmeError(`guest ${guest.id}: ${errorMessage(e)}`, hint);
    }
    if (state === 'ready' ? current.ready : current.written) return current;
    if (!guest.alive()) throw new XmeError(`guest ${guest.id} ended before its cowprobe was ${state}`, hint);
    if (Date.now() >= deadline) {
      const seen = current.ready ? 'ready, not written' : `${current.gfns.length} frame numbers, not ready`;
      throw new XmeError(`guest ${guest.id}: cowprobe not ${state} within ${Math.round(timeoutMs / 1000)} s (${seen})`, hint);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
