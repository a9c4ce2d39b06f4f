/**
 * IN-MEMORY STAND-IN GUEST, for unit tests of page logic only (ledger, strategies' grouping): a Buffer plays
 * guest RAM so that tests can construct exact cases (equal hashes with different bytes, a write to a shared
 * page). Everything it stands in for is also tested against real QEMU guests in the *.e2e.test.ts files.
 */
import { PAGE_SIZE, type Guest, type WorkloadProgress } from '../backends/types.ts';
import type { GuestImage } from '../images/manifest.ts';

export class MemoryGuest implements Guest {
  readonly ram: Buffer;
  readonly files = {};
  readonly bootMs = 0;
  readonly canIntrospectVcpu = false;
  /** What consoleLines() searches: set by the test. */
  console: string[] = [];

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

  memoryView(): Buffer {
    return this.ram;
  }

  translate(): Promise<bigint> {
    return Promise.reject(new Error('MemoryGuest has no page tables'));
  }

  idtBase(): Promise<bigint> {
    return Promise.reject(new Error('MemoryGuest has no vCPU'));
  }

  readVirtual(): Promise<Buffer> {
    return Promise.reject(new Error('MemoryGuest has no vCPU'));
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

  progress(): WorkloadProgress[] {
    return [];
  }

  consoleLines(prefix: string): string[] {
    return this.console.flatMap((line) => {
      const at = line.indexOf(prefix);
      return at >= 0 ? [line.slice(at)] : [];
    });
  }
}
