import { describe, expect, it } from 'vitest';
import { isFailureLine, parseBootLine, parseProgressLine } from './console-protocol.ts';

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

  it('counts a panic, an oops or a BUG as a failure, but not a guest starved of CPU that goes on', () => {
    expect(isFailureLine('[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs')).toBe(true);
    expect(isFailureLine('[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000008')).toBe(true);
    expect(isFailureLine('[    3.0] Oops: 0002 [#1] PREEMPT SMP NOPTI')).toBe(true);
    expect(isFailureLine('XME-ERROR workload memchurn: cannot allocate')).toBe(true);
    // Seen booting 64 TCG guests on 2 cores: the guests went on and booted.
    expect(isFailureLine('[  895.986201] watchdog: BUG: soft lockup - CPU#0 stuck for 28s! [ksoftirqd/0:14]')).toBe(false);
    expect(isFailureLine('[  120.1] rcu: INFO: rcu_preempt self-detected stall on CPU')).toBe(false);
    expect(isFailureLine('[  120.1] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:')).toBe(false);
    expect(isFailureLine('[  120.2] rcu: rcu_preempt kthread starved for 2502 jiffies!')).toBe(false);
  });
});
