/** Reading why a domU ended from xl's per-domain log and the guest console (the messages of a real xl 4.17). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeDomainEnd, xlShutdownReason } from './domain-end.ts';

// The shape of /var/log/xen/xl-<name>.log after a guest kernel panicked with panic=1 (it reboots; on_reboot=destroy).
const PANIC_REBOOT = [
  'Waiting for domain xme-183-g0 (domid 1) to die [pid 2101]',
  'Domain 1 has shut down, reason code 1 0x1',
  'Action for shutdown reason code 1 is destroy',
  'Domain 1 needs to be cleaned up: destroying the domain',
  'Done. Exiting now',
].join('\n');

describe('why a domain ended', () => {
  it('names the shutdown reason xl logged', () => {
    expect(xlShutdownReason(PANIC_REBOOT)).toBe('xl saw it shut down with reason 1 (reboot)');
    expect(xlShutdownReason('Domain 4 has shut down, reason code 3 0x3\n')).toBe('xl saw it shut down with reason 3 (crash)');
    expect(xlShutdownReason('Waiting for domain x (domid 2) to die [pid 1]\n')).toBeUndefined();
  });

  it('combines xl’s reason with the console’s last lines, and says when either is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-domain-end-'));
    try {
      const xlLog = path.join(dir, 'xl-g0.log');
      fs.writeFileSync(xlLog, PANIC_REBOOT);
      expect(describeDomainEnd({ xlLog }, ['Kernel panic - not syncing: Fatal exception ', ''])).toBe(
        'xl saw it shut down with reason 1 (reboot); console\'s last lines: "Kernel panic - not syncing: Fatal exception"',
      );
      expect(describeDomainEnd({ xlLog: path.join(dir, 'missing.log') }, [])).toBe("no shutdown reason in missing.log; console's last lines: none");
      const oops = [
        'XME-PROGRESS idle t=41',
        '[ 52.1] BUG: unable to handle page fault for address: ffffc90000a1b000',
        '[ 52.1] RIP: 0010:memchurn_step+0x1f/0x80',
        '[ 52.1] Call Trace:',
        '[ 52.2]  <TASK>',
        '[ 52.3] Kernel panic - not syncing: Fatal exception',
        '[ 52.3] Rebooting in 1 seconds..',
      ];
      expect(describeDomainEnd({ xlLog }, oops)).toBe(
        'xl saw it shut down with reason 1 (reboot); kernel: "[ 52.1] BUG: unable to handle page fault for address: ffffc90000a1b000" "[ 52.1] RIP: 0010:memchurn_step+0x1f/0x80" "[ 52.1] Call Trace:"; ' +
          'console\'s last lines: "[ 52.3] Kernel panic - not syncing: Fatal exception" "[ 52.3] Rebooting in 1 seconds.."',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
