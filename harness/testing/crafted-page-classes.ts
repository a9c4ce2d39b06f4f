/**
 * CRAFTED PAGE CLASSES, for unit tests of the strategies that share by meaning (strategies/class-keys.ts) and
 * of the tick loop's class provider: a test says what each frame is, and gets the PageClasses columns the
 * classifier would give (harness/introspection/page-classes.ts). Frames not listed are anonymous. The real
 * classifier on real guests: harness/introspection/page-classes.e2e.test.ts, strategies/semantic-classes.e2e.test.ts.
 */
import type { Guest } from '../backends/types.ts';
import { FRAME_BITS, PAGE_KINDS, PageClasses, type FileInfo, type PageKind } from '../introspection/page-classes.ts';
import type { PageClassesOrRefusal, PageClassSource } from '../experiment/tick-page-classes.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';

export interface CraftedFrame {
  kind: PageKind;
  /** pagecache/shmem: index into the files given; module-text: the module's name. */
  file?: number;
  module?: string;
  /** pagecache/shmem: the page's index in its file; module-text: in the module's text. */
  index?: number;
  dirty?: boolean;
  writeback?: boolean;
  /** free: on a per-CPU list (else buddy). */
  perCpu?: boolean;
}

/** A file of a disk file system (ext4 on vda) unless told otherwise. */
export function craftedFile(overrides: Partial<FileInfo> = {}): FileInfo {
  return {
    mapping: 0xffff888000100000n,
    inode: 0xffff888000200000n,
    superBlock: 0xffff888000300000n,
    device: (254 << 20) | 0,
    deviceName: 'vda',
    fsType: 'ext4',
    ino: 12,
    generation: 7,
    mode: 0o100644,
    size: 16 * 4096,
    mtime: { sec: 1_700_000_000, nsec: 5 },
    ctime: { sec: 1_700_000_000, nsec: 5 },
    ...overrides,
  };
}

export function craftedClasses(guestId: string, frames: number, spec: Record<number, CraftedFrame>, files: readonly FileInfo[] = []): PageClasses {
  const kind = new Uint8Array(frames).fill(PAGE_KINDS.indexOf('anon'));
  const bits = new Uint8Array(frames);
  const order = new Uint8Array(frames);
  const head = Uint32Array.from({ length: frames }, (_, i) => i);
  const ref = new Int32Array(frames).fill(-1);
  const fileIndex = new Float64Array(frames).fill(Number.NaN);
  const modules: string[] = [];
  for (const [at, frame] of Object.entries(spec)) {
    const pfn = Number(at);
    kind[pfn] = PAGE_KINDS.indexOf(frame.kind);
    if (frame.dirty) bits[pfn]! |= FRAME_BITS.dirty;
    if (frame.writeback) bits[pfn]! |= FRAME_BITS.writeback;
    if (frame.perCpu) bits[pfn]! |= FRAME_BITS.perCpu;
    if (frame.kind === 'pagecache' || frame.kind === 'shmem') {
      ref[pfn] = frame.file ?? 0;
      fileIndex[pfn] = frame.index ?? 0;
    }
    if (frame.kind === 'module-text') {
      const name = frame.module ?? 'mod';
      ref[pfn] = modules.includes(name) ? modules.indexOf(name) : modules.push(name) - 1;
      fileIndex[pfn] = frame.index ?? 0;
    }
  }
  return new PageClasses(
    guestId,
    frames,
    kind,
    bits,
    order,
    head,
    ref,
    fileIndex,
    files,
    [],
    modules,
    { zone: {}, node: {}, perCpuFreePages: 0, freeAreaPages: 0 },
    { cpus: [], nodes: [] },
  );
}

/** A PageClassSource that gives what `classesAt` says for each call (tick 0, 1, …), and counts the calls. */
export class CraftedClassSource implements PageClassSource {
  calls = 0;
  /** Whether the guests were paused at each call. */
  readonly paused: boolean[] = [];

  constructor(
    private readonly classesAt: (guests: readonly Guest[], call: number) => PageClassesOrRefusal,
    /** CPU each call burns (ms of this thread's CPU, spun), so that billing is seen. */
    private readonly spinMs = 0,
  ) {}

  classify(guests: readonly Guest[], paused: boolean): PageClassesOrRefusal {
    this.paused.push(paused);
    const until = threadCpuNs() + BigInt(Math.round(this.spinMs * 1e6));
    while (threadCpuNs() < until) {
      // burn CPU on this thread
    }
    return this.classesAt(guests, this.calls++);
  }

  takeNotes(): string[] {
    return [];
  }
}
