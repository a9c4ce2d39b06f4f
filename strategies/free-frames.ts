/**
 * The free frames a strategy proposes for reclaim (semantic-free, semantic-union; harness/sharing/ledger.ts,
 * "FREE PAGES RECLAIMED"), tick after tick. The set is kept: where every guest's classes follow on from the ones
 * proposed last (PageClasses.delta), only the frames classified again are looked at, and the proposal says which
 * (FreeChanges), so that the ledger too updates only those. Otherwise every frame is looked at. Between two ticks
 * of idle real guests a few thousand of ~250,000 free frames change; looking at all of them twice (here and in
 * the ledger) was a third of semantic-union's mechanism CPU.
 */
import { FRAME_BITS, PAGE_KINDS, type PageClasses } from '../harness/introspection/page-classes.ts';
import type { FreeChanges, FreeProposal } from '../harness/sharing/ledger.ts';

const FREE = PAGE_KINDS.indexOf('free');

/** Serials of proposals, unique in the process: a ledger tells a proposal that follows its last one by them. */
let lastSerial = 0;

/** This tick's free frames, as a proposal and as figures. */
export interface FreeFramesThisTick {
  proposal: FreeProposal;
  /** Frames on the buddy lists, and on the per-CPU lists (all guests). */
  buddy: number;
  perCpuFrames: number;
  /** Frames proposed (buddy; per-CPU too with perCpu). */
  proposed: number;
}

interface GuestFree {
  classes: PageClasses;
  /** Per frame, 1 if proposed. */
  member: Uint8Array;
  buddy: number;
  perCpu: number;
  proposed: number;
}

export class FreeFrameTracker {
  private guests: GuestFree[] = [];
  private serial: number | undefined;

  constructor(private readonly perCpu: boolean) {}

  /** The free frames of these classes; incremental where they follow on from the classes proposed from last. */
  propose(classes: readonly PageClasses[]): FreeFramesThisTick {
    const follows =
      this.serial !== undefined &&
      this.guests.length === classes.length &&
      classes.every((c, g) => c.delta !== undefined && c.delta.since === this.guests[g]!.classes && c.frames === this.guests[g]!.member.length);
    const touched: ArrayLike<number>[] = [];
    classes.forEach((c, g) => {
      if (follows) {
        const state = this.guests[g]!;
        const list = c.delta!.list;
        const { kind: oldKind, bits: oldBits } = c.delta!.since;
        for (let i = 0; i < list.length; i++) {
          const frame = list[i]!;
          this.uncount(state, oldKind[frame]!, oldBits[frame]!);
          state.member[frame] = this.count(state, c.kind[frame]!, c.bits[frame]!);
        }
        state.classes = c;
        touched.push(list);
      } else {
        const state: GuestFree = { classes: c, member: new Uint8Array(c.frames), buddy: 0, perCpu: 0, proposed: 0 };
        for (let frame = 0; frame < c.frames; frame++) state.member[frame] = this.count(state, c.kind[frame]!, c.bits[frame]!);
        this.guests[g] = state;
      }
    });
    this.guests.length = classes.length;
    const since = follows ? this.serial : undefined;
    const serial = ++lastSerial;
    this.serial = serial;
    const members = this.guests.map((state) => state.member);
    const changes: FreeChanges | undefined = follows ? { serial, since, touched, member: members } : { serial, since: undefined, touched: [], member: members };
    const current = () => this.serial;
    let frames: Uint32Array[] | undefined;
    const proposal: FreeProposal = {
      // The whole set, listed only for a ledger that asks (one that did not take the last proposal, or Xen's).
      get frames(): readonly ArrayLike<number>[] {
        if (frames) return frames;
        if (current() !== serial) throw new Error('a free-frame proposal was read after the next tick replaced it (a bug)');
        frames = members.map((member) => {
          const out: number[] = [];
          for (let frame = 0; frame < member.length; frame++) if (member[frame] === 1) out.push(frame);
          return Uint32Array.from(out);
        });
        return frames;
      },
      changes,
    };
    const sum = (field: 'buddy' | 'perCpu' | 'proposed') => this.guests.reduce((total, state) => total + state[field], 0);
    return { proposal, buddy: sum('buddy'), perCpuFrames: sum('perCpu'), proposed: sum('proposed') };
  }

  /** The next proposal starts again from every frame (a tick was refused: the ledger let every frame go). */
  forget(): void {
    this.guests = [];
    this.serial = undefined;
  }

  /** Counts a frame of this class in the figures; 1 if it is proposed. */
  private count(state: GuestFree, kind: number, bits: number): number {
    if (kind !== FREE) return 0;
    if (bits & FRAME_BITS.perCpu) {
      state.perCpu++;
      if (!this.perCpu) return 0;
    } else state.buddy++;
    state.proposed++;
    return 1;
  }

  /** Takes a frame of this (earlier) class out of the figures. */
  private uncount(state: GuestFree, kind: number, bits: number): void {
    if (kind !== FREE) return;
    if (bits & FRAME_BITS.perCpu) {
      state.perCpu--;
      if (!this.perCpu) return;
    } else state.buddy--;
    state.proposed--;
  }
}
