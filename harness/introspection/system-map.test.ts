import { describe, expect, it } from 'vitest';
import { SystemMap } from './system-map.ts';
import { kernelLayout, pageSpan } from './kernel-layout.ts';

const sample = [
  '0000000000000000 D __per_cpu_start',
  'ffffffff81000000 T _text',
  'ffffffff81000000 T startup_64',
  'ffffffff81c00990 T asm_exc_divide_error',
  'ffffffff81e01ef2 T _etext',
  'ffffffff82000000 D __start_rodata',
  'ffffffff8211ffe0 D linux_banner',
  'ffffffff82827000 D __end_rodata',
  'ffffffff832b4000 b idt_table',
  'ffffffff83830000 B _end',
].join('\n');

describe('System.map parser', () => {
  it('parses addresses as bigint and types', () => {
    const map = SystemMap.parse(`${sample}\n`);
    expect(map.address('_text')).toBe(0xffffffff81000000n);
    expect(map.lookup('idt_table')).toEqual({ address: 0xffffffff832b4000n, type: 'b' });
    expect(map.size).toBe(10);
  });

  it('accepts CRLF line ends and a missing final newline', () => {
    expect(SystemMap.parse(sample.replace(/\n/g, '\r\n')).address('_end')).toBe(0xffffffff83830000n);
  });

  it('keeps the first of repeated names', () => {
    const map = SystemMap.parse('ffffffff81000010 t helper\nffffffff81000020 t helper\n');
    expect(map.address('helper')).toBe(0xffffffff81000010n);
  });

  it('names the line number of a garbage line', () => {
    const text = sample.split('\n');
    text.splice(4, 0, 'this is not a symbol');
    expect(() => SystemMap.parse(text.join('\n'), 'map')).toThrow(/map: line 5 is not "<address> <type> <symbol>"/);
  });

  it('detects a file truncated in the middle of a line', () => {
    const cut = sample.slice(0, sample.indexOf('linux_banner') - 5);
    expect(() => SystemMap.parse(cut)).toThrow(/line 7 /);
  });

  it('names a missing symbol (a file truncated at a line end)', () => {
    const cut = sample.split('\n').slice(0, 6).join('\n');
    const map = SystemMap.parse(cut, 'cut.map');
    expect(() => map.address('linux_banner')).toThrow(/cut.map has no symbol 'linux_banner'/);
    expect(() => kernelLayout(map)).toThrow(/no symbol/);
  });

  it('refuses an empty file', () => {
    expect(() => SystemMap.parse('')).toThrow(/is empty/);
  });
});

describe('kernel layout', () => {
  it('finds code and rodata ranges and counts a partial last page', () => {
    const layout = kernelLayout(SystemMap.parse(sample));
    expect(layout.code).toEqual({ start: 0xffffffff81000000n, end: 0xffffffff81e01ef2n });
    // 0xe01ef2 bytes → pages 0 … 0xe01 → 3586 pages (the last one partial), as measured on Debian 6.1.
    expect(pageSpan(layout, layout.code)).toEqual({ first: 0, count: 3586 });
    expect(pageSpan(layout, layout.rodata)).toEqual({ first: 0x1000, count: 0x827 });
  });

  it('refuses inconsistent ranges', () => {
    const swapped = sample.replace('ffffffff81e01ef2 T _etext', 'ffffffff80e01ef2 T _etext');
    expect(() => kernelLayout(SystemMap.parse(swapped, 'bad.map'))).toThrow(/code range is inconsistent/);
  });
});
