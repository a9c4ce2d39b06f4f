import { describe, expect, it } from 'vitest';
import { bannerMatches, bzImageVersion, parseKernelVersionString } from './bzimage.ts';
import { gateHandler } from './kernel-locator.ts';

const versionText = '6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)';

function header(text: string): Buffer {
  const buffer = Buffer.alloc(0x4000);
  buffer.write('HdrS', 0x202, 'latin1');
  buffer.writeUInt16LE(0x3000 - 0x200, 0x20e);
  buffer.write(`${text}\0`, 0x3000, 'latin1');
  return buffer;
}

describe('kernel version from a bzImage header', () => {
  it('reads the version string the boot protocol points to', () => {
    const version = bzImageVersion(header(versionText));
    expect(version.release).toBe('6.1.0-56-cloud-amd64');
    expect(version.buildTag).toBe('#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)');
  });

  it('refuses a file without the HdrS magic', () => {
    expect(() => bzImageVersion(Buffer.alloc(0x1000))).toThrow(/not a bzImage/);
  });

  it('matches the banner of the same build only', () => {
    const version = parseKernelVersionString(versionText);
    const banner =
      'Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)';
    expect(bannerMatches(banner, version)).toBe(true);
    expect(bannerMatches(banner.replace('6.1.192-2', '6.1.190-1'), version)).toBe(false); // same ABI, other build
    expect(bannerMatches(banner.replace('-56-', '-55-'), version)).toBe(false);
    expect(bannerMatches('garbage', version)).toBe(false);
  });
});

describe('interrupt gate decoding', () => {
  it('assembles the handler from the three offset fields', () => {
    // IDT entry 0 as read from a running 6.1 guest: handler 0xffffffff81c00990 (asm_exc_divide_error).
    const descriptor = Buffer.alloc(16);
    descriptor.writeBigUInt64LE(0x81c08e0000100990n, 0);
    descriptor.writeBigUInt64LE(0x00000000ffffffffn, 8);
    expect(gateHandler(descriptor)).toBe(0xffffffff81c00990n);
  });
});
