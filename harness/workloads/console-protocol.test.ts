import { describe, expect, it } from 'vitest';
import { parseBootLine, parseProgressLine } from './console-protocol.ts';

describe('console protocol', () => {
  it('parses the boot marker and progress lines', () => {
    expect(parseBootLine('XME-BOOTED release=6.1.0-56-cloud-amd64 workload=idle uptime=1.44')).toEqual({
      release: '6.1.0-56-cloud-amd64',
      workload: 'idle',
      uptimeS: 1.44,
    });
    expect(parseProgressLine('XME-PROGRESS t_ms=2004 ops=970 workload=memchurn')).toEqual({ tMs: 2004, ops: 970 });
    expect(parseProgressLine('[    1.2] random kernel line')).toBeUndefined();
  });
});
