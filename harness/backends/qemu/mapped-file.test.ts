import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MappedFile } from './mapped-file.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-map-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('MappedFile (mmap through koffi)', () => {
  it('shows writes made to the file after mapping: the view aliases the memory, it is not a copy', () => {
    const file = path.join(dir, 'ram');
    fs.writeFileSync(file, Buffer.alloc(4 * 4096));
    const mapped = MappedFile.open(file, 4 * 4096);
    const page2 = mapped.pages(2, 1);
    expect(page2.length).toBe(4096);
    expect(page2[7]).toBe(0);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([0xab]), 0, 1, 2 * 4096 + 7);
    fs.closeSync(fd);
    expect(page2[7]).toBe(0xab);
    mapped.close();
  });

  it('refuses pages outside the mapping and use after close', () => {
    const file = path.join(dir, 'small');
    fs.writeFileSync(file, Buffer.alloc(2 * 4096));
    const mapped = MappedFile.open(file, 2 * 4096);
    expect(() => mapped.pages(1, 2)).toThrow(RangeError);
    expect(() => mapped.pages(-1, 1)).toThrow(RangeError);
    mapped.close();
    mapped.close(); // idempotent
    expect(() => mapped.pages(0, 1)).toThrow(/closed/);
  });

  it('refuses a file smaller than the requested size', () => {
    const file = path.join(dir, 'short');
    fs.writeFileSync(file, Buffer.alloc(4096));
    expect(() => MappedFile.open(file, 8192)).toThrow(/expected at least 8192/);
  });
});
