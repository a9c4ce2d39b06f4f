/**
 * Why a domU ended, for an error message: a domain that vanishes (no "Triple fault" and no "crashed" line in
 * the hypervisor's console) ended by its own request — a guest kernel panic reboots it, for example — and
 * xl, which waits for every domain it created, logs the shutdown reason code in /var/log/xen/xl-<name>.log.
 * Together with the last lines of the guest's console this tells a guest panic from a hypervisor crash of
 * the domain from something else destroying it.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Where xl's per-domain logs are (xl writes xl-<domain name>.log there once it daemonizes after create). */
export function xlLogDir(): string {
  return process.env.XME_XEN_XL_LOG_DIR ?? '/var/log/xen';
}

// xen/include/public/sched.h: SHUTDOWN_* codes, as xl prints them ("reason code N").
const SHUTDOWN_REASONS = ['poweroff', 'reboot', 'suspend', 'crash', 'watchdog', 'soft_reset'];

/** The shutdown xl saw ("Domain 3 has shut down, reason code 1 0x1"), named; undefined if it saw none. */
export function xlShutdownReason(xlLog: string): string | undefined {
  const lines = xlLog.split('\n').filter((line) => /has shut down, reason code \d+/.test(line));
  const last = lines.at(-1);
  if (!last) return undefined;
  const code = Number(/reason code (\d+)/.exec(last)![1]);
  return `xl saw it shut down with reason ${code} (${SHUTDOWN_REASONS[code] ?? 'unknown'})`;
}

// What a dying Linux kernel prints (panic=-1 reboots it at once, so these are its last words).
const KERNEL_DEATH = /Kernel panic|BUG:|Oops|general protection|invalid opcode|RIP: |double fault|Call Trace/;

/**
 * One line for an error: xl's shutdown reason (if logged), the kernel's dying words among the console's last
 * lines (a panic, an oops, its RIP; at most 6) and the console's last 2 lines.
 */
export function describeDomainEnd(files: { xlLog?: string }, consoleTail: readonly string[]): string {
  const read = (file: string | undefined) => {
    try {
      return file ? fs.readFileSync(file, 'utf8') : '';
    } catch {
      return '';
    }
  };
  const reason = xlShutdownReason(read(files.xlLog)) ?? `no shutdown reason in ${files.xlLog ? path.basename(files.xlLog) : 'xl’s log'}`;
  const lines = consoleTail.map((line) => line.trim()).filter(Boolean);
  const last = lines.slice(-2);
  const dying = lines
    .slice(0, -2)
    .filter((line) => KERNEL_DEATH.test(line))
    .slice(0, 6);
  const quoted = (some: string[]) => some.map((line) => JSON.stringify(line)).join(' ');
  return `${reason}; ${dying.length ? `kernel: ${quoted(dying)}; ` : ''}console's last lines: ${last.length ? quoted(last) : 'none'}`;
}
