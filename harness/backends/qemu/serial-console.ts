/**
 * Follows a guest's serial log file (QEMU writes it with -serial file:) and understands the lines that the
 * guest's /init and xme-load print: the boot marker, workload progress and errors.
 */
import fs from 'node:fs';
import { XmeError } from '../../util/errors.ts';
import type { WorkloadProgress } from '../types.ts';

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

/** Kernel or workload failures worth quoting when a guest does not come up. */
export function isFailureLine(line: string): boolean {
  return /XME-ERROR|Kernel panic|end Kernel panic|Unable to mount root|BUG:|Oops/.test(line);
}

export class SerialConsole {
  private offset = 0;
  private partial = '';
  private readonly lines: string[] = [];
  /** Every line with an XME-* marker, kept in full (the recent `lines` keep only 200). */
  private readonly xmeLines: string[] = [];
  boot: BootInfo | undefined;
  readonly progress: WorkloadProgress[] = [];
  failure: string | undefined;
  private watcher: NodeJS.Timeout | undefined;

  constructor(readonly file: string) {}

  /**
   * Poll every `intervalMs` from now on, so that each progress line is stamped with the host time it arrived
   * (±intervalMs), not the time somebody asked. Guest time stops while a guest is paused; host time does not,
   * so a throughput over host time counts the pauses as time the guest lost. The timer never keeps Node alive.
   */
  watch(intervalMs = 100): void {
    this.watcher ??= setInterval(() => this.poll(), intervalMs);
    this.watcher.unref();
  }

  unwatch(): void {
    clearInterval(this.watcher);
    this.watcher = undefined;
  }

  /** Read what the guest printed since the last poll. */
  poll(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return; // QEMU has not created it yet
    }
    try {
      const chunk = Buffer.alloc(64 * 1024);
      for (;;) {
        const read = fs.readSync(fd, chunk, 0, chunk.length, this.offset);
        if (read <= 0) break;
        this.offset += read;
        this.consume(chunk.toString('utf8', 0, read));
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  private consume(text: string): void {
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
    const source = prefix.includes('XME-') ? this.xmeLines : this.lines;
    const found: string[] = [];
    for (const line of source) {
      const at = line.indexOf(prefix);
      if (at >= 0) found.push(line.slice(at));
    }
    return found;
  }

  /** The last n lines, for error messages. */
  tail(n = 5): string[] {
    return this.lines.filter((line) => line.trim()).slice(-n);
  }
}

export interface BootWait {
  /** How the guest is named in messages, e.g. "guest g0" or "guest g0 (domain xme-1-g0)". */
  label: string;
  /** Where its console log is, for the hint. */
  log: string;
  alive(): boolean;
  /** Why it is gone, once alive() is false. */
  whyGone(): string;
  startedAt: number;
  deadline: number;
  /** `uname -r` the guest must report: the image's kernel. */
  expectedRelease: string;
  pollMs: number;
}

/**
 * Wait for the boot marker; fail at once, with the reason, if the guest ends, its console shows a failure
 * (kernel panic, XME-ERROR), the deadline passes, or it booted another kernel than the image's.
 */
export async function waitForBootMarker(console: SerialConsole, wait: BootWait): Promise<BootInfo> {
  const hint = `console log: ${wait.log}`;
  for (;;) {
    console.poll();
    if (console.boot) break;
    if (!wait.alive()) throw new XmeError(`${wait.label} did not boot: ${wait.whyGone()}`, hint);
    if (console.failure) throw new XmeError(`${wait.label} failed while booting: ${console.failure}`, hint);
    if (Date.now() > wait.deadline) {
      const last = console.tail(1)[0]?.trim();
      throw new XmeError(
        `${wait.label} printed no boot marker within ${Math.round((wait.deadline - wait.startedAt) / 1000)} s${last ? ` (last line: ${last})` : ''}`,
        `the machine may be overloaded: boot fewer guests or raise --boot-timeout; ${hint}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, wait.pollMs));
  }
  if (console.boot.release !== wait.expectedRelease) {
    throw new XmeError(`${wait.label} booted kernel ${console.boot.release}, but the image's kernel is ${wait.expectedRelease}`, hint);
  }
  return console.boot;
}
