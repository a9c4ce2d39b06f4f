/**
 * What the guest's /init and xme-load print on the console, and how the harness reads it: the boot marker,
 * workload progress, XME-* markers and failures. Backend-neutral: a backend follows its own console (QEMU's
 * -serial file, xenconsoled's log; harness/backends/serial-console.ts) and feeds the text to a ConsoleTranscript.
 */
import type { WorkloadProgress } from '../vocabulary.ts';

export const BOOT_MARKER = 'XME-BOOTED';

export interface BootInfo {
  release: string;
  workload: string;
  /** Guest uptime at the marker, seconds. */
  uptimeS: number;
}

export function parseBootLine(line: string): BootInfo | undefined {
  const match = /XME-BOOTED release=(\S+) workload=(\S+) uptime=([\d.]+)/.exec(line);
  return match ? { release: match[1]!, workload: match[2]!, uptimeS: Number(match[3]) } : undefined;
}

export function parseProgressLine(line: string): WorkloadProgress | undefined {
  const match = /XME-PROGRESS t_ms=(\d+) ops=(\d+)/.exec(line);
  return match ? { tMs: Number(match[1]), ops: Number(match[2]) } : undefined;
}

/**
 * A guest starved of CPU, which then goes on: the soft-lockup watchdog ("watchdog: BUG: soft lockup - CPU#0
 * stuck for 28s!") and RCU stall warnings. On an overcommitted host they are expected — 64 TCG guests on 2
 * cores printed them while booting normally — so they are not failures.
 */
const STARVED = /BUG: soft lockup|rcu: INFO: rcu_\w+ (self-)?detected stall|rcu_\w+ kthread starved/;

/** Kernel or workload failures worth quoting when a guest does not come up. */
export function isFailureLine(line: string): boolean {
  return /XME-ERROR|Kernel panic|end Kernel panic|Unable to mount root|BUG:|Oops/.test(line) && !STARVED.test(line);
}

/** What a guest printed so far, as the protocol understands it: fed text in arbitrary chunks. */
export class ConsoleTranscript {
  private partial = '';
  private readonly lines: string[] = [];
  /** Every line with an XME-* marker, kept in full (the recent `lines` keep only 200). */
  private readonly xmeLines: string[] = [];
  boot: BootInfo | undefined;
  readonly progress: WorkloadProgress[] = [];
  failure: string | undefined;

  /** Take more console text (lines may be split across calls); progress lines are stamped with Date.now(). */
  consume(text: string): void {
    const parts = (this.partial + text).split(/\r?\n/);
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      const line = raw.replace(/\r/g, '');
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      if (line.includes('XME-')) this.xmeLines.push(line);
      const progress = parseProgressLine(line);
      if (progress) {
        this.progress.push({ ...progress, hostMs: Date.now() });
        continue;
      }
      this.boot ??= parseBootLine(line);
      if (!this.failure && isFailureLine(line)) this.failure = line.trim();
    }
  }

  /**
   * Lines seen so far that contain `prefix`, in order, each cut to start at the prefix (whatever came before
   * it on the line — a timestamp, kernel text — is dropped). For a prefix with "XME-" every such line since the
   * start is kept; other prefixes only find the last 200 lines.
   */
  matching(prefix: string): string[] {
    return linesWith(prefix.includes('XME-') ? this.xmeLines : this.lines, prefix);
  }

  /** The last n lines, for error messages. */
  tail(n = 5): string[] {
    return this.lines.filter((line) => line.trim()).slice(-n);
  }
}

/** The lines that contain `prefix`, each from the prefix on (GuestConsole.lines over a list of lines). */
export function linesWith(lines: readonly string[], prefix: string): string[] {
  const found: string[] = [];
  for (const line of lines) {
    const at = line.indexOf(prefix);
    if (at >= 0) found.push(line.slice(at));
  }
  return found;
}

/** The guest's console as the workload protocol reads it (progress lines, XME- markers): an ability of a guest (backends/types.ts). */
export interface GuestConsole {
  /** Workload progress lines seen so far. */
  progress(): WorkloadProgress[];
  /**
   * Every console line seen so far that contains `prefix`, in order, each from the prefix on (a timestamp,
   * kernel text or CR before it is dropped). Lines with an "XME-" marker are all kept (not only the last 200),
   * so an XME-* prefix (e.g. "XME-COWPROBE", "XME-ERROR") gives the full list; other prefixes only see the
   * recent lines.
   */
  lines(prefix: string): string[];
}
