/** Reading guest-physical memory through the Guest seam, for anyone who needs bytes that cross page boundaries. */
import { PAGE_SIZE } from '../vocabulary.ts';
import type { Guest } from './types.ts';

/** Bytes at a guest-physical address, across page boundaries, copied out of guest memory. */
export function readPhysical(guest: Guest, address: bigint, length: number): Buffer {
  const first = Number(address / BigInt(PAGE_SIZE));
  const offset = Number(address % BigInt(PAGE_SIZE));
  const pages = Math.ceil((offset + length) / PAGE_SIZE);
  if (first + pages > guest.memoryPages) throw new RangeError(`0x${address.toString(16)}+${length} is outside guest ${guest.id}'s memory`);
  return Buffer.from(guest.pages(first, pages).subarray(offset, offset + length));
}
