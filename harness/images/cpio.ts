/**
 * Writes an initramfs as a "newc" cpio archive (the format the Linux kernel unpacks). Written here rather
 * than with cpio(1) so that the archive is byte-for-byte reproducible (fixed mtimes, inode numbers and
 * order) and so that /dev/console can be created without root: the kernel needs it to give /init a console.
 */
export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(ino: number, mode: number, name: string, data: Buffer, rdevMajor = 0, rdevMinor = 0): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const header = Buffer.from(
    '070701' +
      [
        ino,
        mode,
        0, // uid
        0, // gid
        mode & S_IFDIR ? 2 : 1, // nlink
        0, // mtime: fixed for reproducibility
        data.length,
        0, // devmajor
        0, // devminor
        rdevMajor,
        rdevMinor,
        nameBytes.length,
        0, // check
      ]
        .map(hex8)
        .join(''),
    'ascii',
  );
  const headerAndName = Buffer.concat([header, nameBytes]);
  return Buffer.concat([headerAndName, pad4(headerAndName.length), data, pad4(data.length)]);
}

/** The archive for these entries, in the order given (parents before children). */
export function writeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '');
    if (!name || name.split('/').includes('..')) throw new Error(`invalid cpio path '${entry.path}'`);
    switch (entry.kind) {
      case 'dir':
        parts.push(record(ino++, S_IFDIR | (entry.mode ?? 0o755), name, Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(record(ino++, S_IFREG | (entry.mode ?? 0o644), name, entry.data));
        break;
      case 'symlink':
        parts.push(record(ino++, S_IFLNK | 0o777, name, Buffer.from(entry.target, 'utf8')));
        break;
      case 'chardev':
        parts.push(record(ino++, S_IFCHR | (entry.mode ?? 0o600), name, Buffer.alloc(0), entry.major, entry.minor));
        break;
    }
  }
  parts.push(record(0, 0, 'TRAILER!!!', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

export interface CpioMember {
  name: string;
  mode: number;
  data: Buffer;
  rdevMajor: number;
  rdevMinor: number;
}

/** Reads a newc archive back (for tests and for `xme image verify`). */
export function readCpio(archive: Buffer): CpioMember[] {
  const members: CpioMember[] = [];
  let offset = 0;
  const field = (index: number) => parseInt(archive.toString('ascii', offset + 6 + index * 8, offset + 14 + index * 8), 16);
  while (offset + 110 <= archive.length) {
    if (archive.toString('ascii', offset, offset + 6) !== '070701') throw new Error(`bad cpio magic at byte ${offset}`);
    const mode = field(1);
    const size = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameSize = field(11);
    const nameStart = offset + 110;
    const name = archive.toString('utf8', nameStart, nameStart + nameSize - 1);
    const dataStart = nameStart + nameSize + ((4 - ((110 + nameSize) % 4)) % 4);
    if (name === 'TRAILER!!!') break;
    if (dataStart + size > archive.length) throw new Error(`cpio member ${name} is truncated`);
    members.push({ name, mode, data: archive.subarray(dataStart, dataStart + size), rdevMajor, rdevMinor });
    offset = dataStart + size + ((4 - (size % 4)) % 4);
  }
  return members;
}
