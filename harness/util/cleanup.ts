/**
 * Process-wide cleanup: everything xme starts or creates (QEMU processes, guest RAM files, sockets, changed
 * host settings) registers here, and is undone on normal exit, on Ctrl-C / SIGTERM / SIGHUP, and when the
 * process dies of an uncaught exception (Node still emits 'exit' then, where only synchronous work runs —
 * hence every task also has a synchronous form).
 */
import { errorMessage } from './errors.ts';

export interface CleanupTask {
  /** Shown when cleanup is slow or fails. */
  readonly name: string;
  /** Graceful undo (e.g. QMP quit, then kill). */
  run(): Promise<void>;
  /** Last resort, synchronous: kill by PID, remove files. Must be safe to call after run(). */
  runSync(): void;
}

const tasks = new Set<CleanupTask>();
let handlersInstalled = false;
let exitHandlerInstalled = false;
let signalled = false;

const signalExitCodes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/** Register a task; the returned function unregisters it (call it once the resource is released). */
export function onCleanup(task: CleanupTask): () => void {
  installHandlers();
  tasks.add(task);
  return () => {
    tasks.delete(task);
    if (tasks.size === 0) removeSignalHandlers();
  };
}

/** Run every registered task once, newest first, each bounded in time. */
export async function runAllCleanups(timeoutMs = 10_000): Promise<void> {
  const pending = [...tasks].reverse();
  tasks.clear();
  for (const task of pending) {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        task.run(),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`cleanup of ${task.name} timed out`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      process.stderr.write(`xme: cleanup of ${task.name}: ${errorMessage(error)}; forcing it\n`);
      safeSync(task);
    } finally {
      clearTimeout(timer);
    }
  }
}

function safeSync(task: CleanupTask): void {
  try {
    task.runSync();
  } catch (error) {
    process.stderr.write(`xme: cleanup of ${task.name} failed: ${errorMessage(error)}\n`);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  if (signalled) return; // a second Ctrl-C while cleaning up: keep cleaning
  signalled = true;
  process.stderr.write(`\nxme: ${signal} received — stopping guests and removing their files…\n`);
  void runAllCleanups().finally(() => process.exit(signalExitCodes[signal]));
}

/**
 * Signal handlers exist only while something needs cleaning up, so that a process with nothing to undo keeps
 * the default behaviour (and tools that signal their workers, like test runners, are not surprised).
 */
function installHandlers(): void {
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.on('exit', () => {
      for (const task of [...tasks].reverse()) safeSync(task);
      tasks.clear();
    });
  }
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of Object.keys(signalExitCodes) as NodeJS.Signals[]) process.on(signal, onSignal);
}

function removeSignalHandlers(): void {
  if (!handlersInstalled || signalled) return;
  handlersInstalled = false;
  for (const signal of Object.keys(signalExitCodes) as NodeJS.Signals[]) process.off(signal, onSignal);
}

/** True once a termination signal arrived: long loops check it to stop early and keep partial results. */
export function terminationRequested(): boolean {
  return signalled;
}
