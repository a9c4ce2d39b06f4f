/**
 * The KSM guard: a process of its own that puts the host's KSM settings back if the xme process holding them
 * dies without doing so — SIGKILL, the OOM killer, a crash in native code — which no handler inside the
 * process can catch. KsmSession starts one before it changes any knob and stands it down after restoring.
 *
 * How it knows (details in ksm-guard-process.ts): a pipe whose write end only this process holds (made
 * with pipe2(O_CLOEXEC), so no QEMU or other program started later inherits it) is the guard's fd 0. The
 * kernel closes it when this process dies, however it dies, and the guard reads end-of-file at once; the
 * guard also checks every 200 ms whether this process is gone. release() writes STAND_DOWN on the pipe after
 * restoring and removing the state file: the guard then ends touching nothing. The guard restores only a
 * state file still owned by the dead process, so it never repeats a restore that was done.
 *
 * Start is synchronous: the guard says READY on a second pipe once it watches, so that no knob changes
 * before. It runs detached (setsid: no Ctrl-C or hang-up from the terminal reaches it) and unref'd (it does
 * not keep xme running). Should it die while the session runs, another is started (at most MAX_RESTARTS
 * times); without a guard, the state file remains the next run's way back (ksm-recover.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../util/errors.ts';
import { O_CLOEXEC, O_NONBLOCK, pipeOrThrow } from '../util/libc.ts';
import { projectRoot } from '../util/paths.ts';
import type { ProcessIdentity } from '../util/process-identity.ts';
import { LIFELINE_FD, READY_FD, STAND_DOWN } from './ksm-guard-process.ts';

const GUARD_MAIN = fileURLToPath(new URL('./ksm-guard-main.ts', import.meta.url));
/** A loaded 2-core host starts node with tsx in well under a second; this only bounds a hang. */
const READY_TIMEOUT_MS = 30_000;
const MAX_RESTARTS = 3;
/** After STAND_DOWN the guard ends at once; one still there after this is killed (by its PID). */
const EXIT_GRACE_MS = 2_000;

interface GuardProcess {
  child: ChildProcess;
  pid: number;
  /** Our write end of the lifeline. */
  lifeline: number;
}

export interface KsmGuardOptions {
  /** Problems with the guard itself (it could not start, it died). */
  onNotice: (message: string) => void;
  /** Each time a guard process is ready (again), with its PID. */
  onStart?: (pid: number) => void;
}

export class KsmGuard {
  private stoodDown = false;
  private restarts = 0;
  private current: GuardProcess | undefined;

  private constructor(
    private readonly owner: ProcessIdentity,
    private readonly options: KsmGuardOptions,
  ) {}

  /**
   * Start a guard for the KSM state file that `owner` (this process) holds, with its saved values already
   * written; returns once the guard watches. If it cannot start, says so through onNotice and runs without.
   */
  static start(owner: ProcessIdentity, options: KsmGuardOptions): KsmGuard {
    const guard = new KsmGuard(owner, options);
    guard.launch();
    return guard;
  }

  /** The running guard process's PID (undefined: none runs). */
  get pid(): number | undefined {
    return this.current?.pid;
  }

  /**
   * The session restored the settings itself (or failed and said so): tell the guard, which ends without
   * touching anything. Synchronous, so that it also runs in the exit handler. Idempotent.
   */
  standDown(): void {
    if (this.stoodDown) return;
    this.stoodDown = true;
    const guard = this.current;
    this.current = undefined;
    if (!guard) return;
    try {
      fs.writeSync(guard.lifeline, STAND_DOWN);
    } catch {
      // EPIPE: the guard is gone already
    }
    closeQuietly(guard.lifeline);
    if (hasExited(guard.child)) return;
    const timer = setTimeout(() => {
      if (!hasExited(guard.child)) process.kill(guard.pid, 'SIGKILL'); // not reaped yet: the PID is still this guard's
    }, EXIT_GRACE_MS);
    timer.unref();
    guard.child.once('exit', () => clearTimeout(timer));
  }

  private launch(): void {
    let guard: GuardProcess;
    try {
      guard = startGuardProcess(this.owner);
    } catch (error) {
      this.options.onNotice(
        `KSM: the guard process that restores the host's KSM settings if xme is killed did not start (${errorMessage(error)}); ` +
          'if xme is killed now, the next xme run restores them',
      );
      return;
    }
    this.current = guard;
    guard.child.once('exit', (code, signal) => this.exited(guard, code, signal));
    try {
      this.options.onStart?.(guard.pid);
    } catch (error) {
      this.options.onNotice(`KSM: could not record the guard process ${guard.pid}: ${errorMessage(error)}`); // it watches all the same
    }
  }

  private exited(guard: GuardProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stoodDown || this.current !== guard) return;
    this.current = undefined;
    closeQuietly(guard.lifeline);
    // Status 0: it ended by itself, having found its xme process gone (only when that is not this process).
    if (signal === null && code === 0) return;
    const how = signal ? `killed by ${signal}` : `exit status ${code}`;
    if (this.restarts >= MAX_RESTARTS) {
      this.options.onNotice(
        `KSM: the guard process ${guard.pid} ended (${how}), the ${MAX_RESTARTS + 1}th to end; no other is started: if xme is killed now, the next xme run restores the host's KSM settings`,
      );
      return;
    }
    this.restarts++;
    this.options.onNotice(`KSM: the guard process ${guard.pid} ended (${how}) while the run holds KSM; starting another`);
    this.launch();
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** The first line on non-blocking `fd`, waiting up to `timeoutMs`; '' if the writer closed it first. */
function readLineSync(fd: number, timeoutMs: number): string {
  const deadline = Date.now() + timeoutMs;
  const buffer = Buffer.alloc(512);
  let text = '';
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      if (Date.now() > deadline) throw new Error(`it did not say it was ready within ${timeoutMs / 1000} s`);
      sleepSync(5);
      continue;
    }
    if (n === 0) return text;
    text += buffer.toString('utf8', 0, n);
    const newline = text.indexOf('\n');
    if (newline >= 0) return text.slice(0, newline);
  }
}

function startGuardProcess(owner: ProcessIdentity): GuardProcess {
  const [lifelineRead, lifelineWrite] = pipeOrThrow(O_CLOEXEC, 'the KSM guard lifeline');
  let readyRead: number;
  let readyWrite: number;
  try {
    [readyRead, readyWrite] = pipeOrThrow(O_CLOEXEC | O_NONBLOCK, 'the KSM guard readiness');
  } catch (error) {
    closeQuietly(lifelineRead);
    closeQuietly(lifelineWrite);
    throw error;
  }
  let child: ChildProcess | undefined;
  try {
    const stdio: (number | 'ignore' | 'inherit')[] = [];
    stdio[LIFELINE_FD] = lifelineRead;
    stdio[1] = 'ignore';
    stdio[2] = 'inherit';
    stdio[READY_FD] = readyWrite;
    child = spawn(process.execPath, ['--import', 'tsx', GUARD_MAIN, JSON.stringify(owner)], { cwd: projectRoot, detached: true, stdio });
    child.on('error', () => undefined); // a failed spawn shows as end-of-file on the readiness pipe
    child.unref();
  } finally {
    // The guard has its copies; ours must go, or end-of-file could never come.
    closeQuietly(lifelineRead);
    closeQuietly(readyWrite);
  }
  try {
    if (child.pid === undefined) throw new Error(`${process.execPath} could not be started`);
    const answer = readLineSync(readyRead, READY_TIMEOUT_MS);
    if (!answer.startsWith('READY ')) throw new Error(answer.replace(/^FAIL /, '') || 'it ended before it was ready');
    return { child, pid: child.pid, lifeline: lifelineWrite };
  } catch (error) {
    if (child.pid !== undefined && !hasExited(child)) process.kill(child.pid, 'SIGKILL');
    closeQuietly(lifelineWrite);
    throw error;
  } finally {
    closeQuietly(readyRead);
  }
}
