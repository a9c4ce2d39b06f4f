import { describe, expect, it } from 'vitest';
import { readCpio, writeCpio } from './cpio.ts';

describe('newc cpio writer', () => {
  it('round-trips files, directories, symlinks and device nodes with 4-byte alignment', () => {
    const payload = Buffer.from('hello\nworld'); // 11 bytes: forces padding
    const archive = writeCpio([
      { kind: 'dir', path: 'dev' },
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: '/init', data: payload, mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    ]);
    expect(archive.length % 4).toBe(0);
    const members = readCpio(archive);
    expect(members.map((m) => m.name)).toEqual(['dev', 'dev/console', 'init', 'bin/sh']);
    const [dir, console, init, sh] = members;
    expect(dir!.mode & 0o170000).toBe(0o040000);
    expect(console!.mode & 0o170000).toBe(0o020000);
    expect([console!.rdevMajor, console!.rdevMinor]).toEqual([5, 1]);
    expect(init!.data.equals(payload)).toBe(true);
    expect(init!.mode & 0o777).toBe(0o755);
    expect(sh!.data.toString()).toBe('busybox');
  });

  it('is reproducible: same entries, same bytes', () => {
    const entries = [{ kind: 'file' as const, path: 'a', data: Buffer.from('x') }];
    expect(writeCpio(entries).equals(writeCpio(entries))).toBe(true);
  });

  it('rejects paths that escape the archive', () => {
    expect(() => writeCpio([{ kind: 'dir', path: '../etc' }])).toThrow(/invalid cpio path/);
  });

  it('detects a truncated archive', () => {
    const archive = writeCpio([{ kind: 'file', path: 'big', data: Buffer.alloc(1000, 1) }]);
    expect(() => readCpio(archive.subarray(0, 300))).toThrow(/truncated/);
  });
});
