/**
 * IN-MEMORY STAND-IN GUEST, for unit tests of page logic only (ledger, strategies' grouping): a Buffer plays
 * guest RAM so that tests can construct exact cases (equal hashes with different bytes, a write to a shared
 * page). Everything it stands in for is also tested against real QEMU guests in the *.e2e.test.ts files.
 */
import type { Guest, MemoryView } from '../backends/types.ts';
import type { GuestConsole } from '../workloads/console-protocol.ts';
import type { WorkloadProgress } from '../vocabulary.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { GuestImage } from '../images/manifest.ts';
import { linesWith } from '../workloads/console-protocol.ts';

export class MemoryGuest implements Guest {
  readonly ram: Buffer;
  readonly files = {};
  readonly bootMs = 0;
  /** What console.lines() searches: set by the test. */
  printed: string[] = [];
  /** What console.progress() returns: a test (or a FakeGuest's workload hook) may push lines to it. */
  readonly workloadProgress: WorkloadProgress[] = [];
  /** No vCPU, no residency (every page backed), no host process: only memory and a console the test writes. */
  readonly console: GuestConsole = {
    progress: () => this.workloadProgress,
    lines: (prefix) => linesWith(this.printed, prefix),
  };
  readonly memoryView: MemoryView = { all: () => this.ram };

  constructor(
    readonly id: string,
    readonly memoryPages: number,
  ) {
    this.ram = Buffer.alloc(memoryPages * PAGE_SIZE);
  }

  get image(): GuestImage {
    throw new Error('MemoryGuest has no image');
  }

  /** Fill page gfn with a byte pattern (seeded so that different seeds give different pages). */
  fill(gfn: number, seed: number): void {
    const page = this.pages(gfn, 1);
    for (let i = 0; i < PAGE_SIZE; i++) page[i] = (seed * 31 + i * 7) & 0xff;
  }

  pages(firstGfn: number, count: number): Buffer {
    if (firstGfn < 0 || firstGfn + count > this.memoryPages) throw new RangeError('outside memory');
    return this.ram.subarray(firstGfn * PAGE_SIZE, (firstGfn + count) * PAGE_SIZE);
  }

  pause(): Promise<void> {
    return Promise.resolve();
  }

  resume(): Promise<void> {
    return Promise.resolve();
  }

  alive(): boolean {
    return true;
  }
}
