/**
 * Where a kernel sits in a guest and how its bytes are read: shared by the locator (which finds the placement)
 * and the kallsyms reader (which checks a System.map at that placement), so neither needs the other.
 */
import type { Guest } from '../backends/types.ts';
import { PAGE_SIZE } from '../vocabulary.ts';

export type PlacementRoute = 'hypervisor' | 'memory';

export interface KernelPlacement {
  /** Guest-physical address of _text. */
  physicalBase: bigint;
  /** KASLR slide of kernel virtual addresses (0 with nokaslr). */
  virtualOffset: bigint;
  route: PlacementRoute;
}

/** Bytes at a guest-physical address, across page boundaries, copied out of guest memory. */
export function readPhysical(guest: Guest, address: bigint, length: number): Buffer {
  const first = Number(address / BigInt(PAGE_SIZE));
  const offset = Number(address % BigInt(PAGE_SIZE));
  const pages = Math.ceil((offset + length) / PAGE_SIZE);
  if (first + pages > guest.memoryPages) throw new RangeError(`0x${address.toString(16)}+${length} is outside guest ${guest.id}'s memory`);
  return Buffer.from(guest.pages(first, pages).subarray(offset, offset + length));
}
