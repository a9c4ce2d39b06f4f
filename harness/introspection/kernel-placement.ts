/**
 * Where a kernel sits in a guest: shared by the locator (which finds the placement) and the kallsyms reader
 * (which checks a System.map at that placement), so neither needs the other.
 */

export type PlacementRoute = 'hypervisor' | 'memory';

export interface KernelPlacement {
  /** Guest-physical address of _text. */
  physicalBase: bigint;
  /** KASLR slide of kernel virtual addresses (0 with nokaslr). */
  virtualOffset: bigint;
  route: PlacementRoute;
}
