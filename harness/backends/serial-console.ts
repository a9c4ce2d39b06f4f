/**
 * Follows a guest's console log file as the hypervisor writes it (QEMU: -serial file:; Xen: xenconsoled's
 * guest log) into a ConsoleTranscript, which understands what the guest prints (harness/workloads/
 * console-protocol.ts), and waits for the boot marker. Shared by the QEMU and Xen backends.
 */
import { XmeError } from '../util/errors.ts';
import { ConsoleTranscript, type BootInfo } from '../workloads/console-protocol.ts';
import { FileFollower } from './file-follower.ts';

export class SerialConsole extends ConsoleTranscript {
  private readonly follower: FileFollower;

  constructor(readonly file: string) {
    super();
    this.follower = new FileFollower(file, (text) => this.consume(text));
  }

  /**
   * Poll every `intervalMs` from now on, so that each progress line is stamped with the host time it arrived
   * (±intervalMs), not the time somebody asked. Guest time stops while a guest is paused; host time does not,
   * so a throughput over host time counts the pauses as time the guest lost. The timer never keeps Node alive.
   */
  watch(intervalMs = 100): void {
    this.follower.watch(intervalMs);
  }

  unwatch(): void {
    this.follower.unwatch();
  }

  /** Read what the guest printed since the last poll (nothing if the hypervisor has not created the file yet). */
  poll(): void {
    this.follower.poll();
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
