/**
 * Follows a guest's serial log file (QEMU writes it with -serial file:) and understands the lines that the
 * guest's /init and xme-load print: the boot marker, workload progress and errors.
 */
import fs from 'node:fs';
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
  boot: BootInfo | undefined;
  readonly progress: WorkloadProgress[] = [];
  failure: string | undefined;

  constructor(readonly file: string) {}

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
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      const progress = parseProgressLine(line);
      if (progress) {
        this.progress.push(progress);
        continue;
      }
      this.boot ??= parseBootLine(line);
      if (!this.failure && isFailureLine(line)) this.failure = line.trim();
    }
  }

  /** The last n lines, for error messages. */
  tail(n = 5): string[] {
    return this.lines.filter((line) => line.trim()).slice(-n);
  }
}
