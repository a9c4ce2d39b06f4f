/**
 * Where the parts of the kernel image are, from System.map: code [_text, _etext), read-only data
 * [__start_rodata, __end_rodata), and the symbols used to find the kernel in guest memory.
 */
import { XmeError } from '../util/errors.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { SystemMap } from './system-map.ts';

export const PAGE = BigInt(PAGE_SIZE);

export interface AddressRange {
  start: bigint;
  end: bigint;
}

export interface KernelLayout {
  /** _text: the virtual address the kernel image starts at without KASLR. */
  text: bigint;
  code: AddressRange;
  rodata: AddressRange;
  /** _end: end of the image (bss included); the image is physically contiguous up to here. */
  end: bigint;
  linuxBanner: bigint;
  /** First IDT vector's handler and the IDT itself: they give the KASLR offset. */
  divideErrorHandler: bigint;
  idtTable: bigint;
}

export function kernelLayout(map: SystemMap): KernelLayout {
  const layout: KernelLayout = {
    text: map.address('_text'),
    code: { start: map.address('_text'), end: map.address('_etext') },
    rodata: { start: map.address('__start_rodata'), end: map.address('__end_rodata') },
    end: map.address('_end'),
    linuxBanner: map.address('linux_banner'),
    divideErrorHandler: map.address('asm_exc_divide_error'),
    idtTable: map.address('idt_table'),
  };
  if (layout.text % PAGE !== 0n) throw new XmeError(`${map.source}: _text is not page aligned`);
  for (const [name, range] of [
    ['code', layout.code],
    ['rodata', layout.rodata],
  ] as const) {
    if (range.end <= range.start || range.start < layout.text || range.end > layout.end) {
      throw new XmeError(`${map.source}: the ${name} range is inconsistent (${range.start.toString(16)}–${range.end.toString(16)})`);
    }
  }
  return layout;
}

/** Page indexes, relative to _text, that a range covers (a partial last page counts). */
export function pageSpan(layout: KernelLayout, range: AddressRange): { first: number; count: number } {
  const first = Number((range.start - layout.text) / PAGE);
  const last = Number((range.end - 1n - layout.text) / PAGE);
  return { first, count: last - first + 1 };
}
