/**
 * A client of the QEMU guest agent (qemu-guest-agent in the guest, qemu-ga-ref(7)) over the UNIX socket of its
 * virtio-serial chardev, as qmp.ts is a client of QMP: one JSON object a line each way, commands answered in
 * order. What the protocol asks of a client, and how this one does it:
 *
 * - The channel may hold stale data: replies to an earlier client's (or our own timed-out) requests, or half a
 *   line. So the client syncs first, and again after any timeout: it sends 0xFF (the agent's parser treats the
 *   invalid byte as a flush and answers it with an error, which is discarded) and `guest-sync` with a random
 *   id, then discards every line until the reply `{"return": <that id>}`.
 * - Data sent before the agent runs waits in the channel; syncs are simply repeated until one is answered
 *   (waitUntilReady), the stale replies to the earlier ones discarded.
 * - Every other request carries an "id", which the agent echoes; a reply with another id is stale and
 *   discarded. One request is in flight at a time.
 * - guest-exec starts a program and returns its pid; guest-exec-status says whether it has exited and, once it
 *   has, its exit code or signal and the captured output (base64 out-data / err-data); after that the agent
 *   forgets the pid. guest-file-open / -read / -close read a file (base64 buf-b64, eof).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { XmeError } from '../../util/errors.ts';
import type { GuestAgent, GuestExecResult, GuestProcessStatus } from '../types.ts';

/** An error the agent answered with ({"error": {"class", "desc"}}). */
export class GuestAgentCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`guest agent ${command} failed: ${errorClass}: ${desc}`);
  }
}

interface Waiter {
  /** Whether this line is the answer awaited (anything else is stale and dropped). */
  accepts(message: Record<string, unknown>): boolean;
  resolve(message: Record<string, unknown>): void;
  reject(error: Error): void;
}

const FLUSH = Buffer.from([0xff]);

export interface ReadyWait {
  /** Give up at this time (Date.now() clock). */
  deadline: number;
  /** How long one guest-sync may take before it is sent again (default 1 s). */
  attemptMs?: number;
  /** Asked between attempts: a reason to stop waiting (the guest died, its console shows a panic), or undefined. */
  stopWaiting?: () => string | undefined;
}

export class GuestAgentClient implements GuestAgent {
  private buffer = Buffer.alloc(0);
  private waiter: Waiter | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private synced = false;
  private closed = false;
  private nextId = 1;
  /** Lines dropped as stale (replies nobody waited for, flush errors, half lines): for tests and diagnostics. */
  discarded = 0;

  private constructor(
    private readonly socket: net.Socket,
    /** How messages name it, e.g. "guest g0's agent". */
    readonly label: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    socket.on('error', () => {
      // 'close' follows and fails what is pending
    });
  }

  /** Connect to the agent's socket (QEMU creates it as it starts: retried until timeoutMs). Does not sync. */
  static async open(socketPath: string, label: string, timeoutMs = 10_000, alive: () => boolean = () => true): Promise<GuestAgentClient> {
    const deadline = Date.now() + timeoutMs;
    let lastError: Error | undefined;
    while (Date.now() < deadline && alive()) {
      try {
        return new GuestAgentClient(await openSocket(socketPath), label);
      } catch (error) {
        lastError = error as Error;
        await sleep(50);
      }
    }
    throw new XmeError(`could not connect to ${label}'s socket ${socketPath}: ${lastError?.message ?? 'QEMU exited'}`);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * Sync until the agent answers (it starts late in the guest's boot), then guest-ping. Fails with the reason
   * stopWaiting gives, or at the deadline.
   */
  async waitUntilReady(wait: ReadyWait): Promise<void> {
    const attemptMs = wait.attemptMs ?? 1000;
    for (;;) {
      const reason = wait.stopWaiting?.();
      if (reason) throw new XmeError(`${this.label} cannot answer: ${reason}`);
      if (this.closed) throw new XmeError(`${this.label}'s connection closed (QEMU exited?)`);
      const left = wait.deadline - Date.now();
      if (left <= 0) throw new XmeError(`${this.label} did not answer guest-sync in time`);
      try {
        await this.serialized(() => this.sync(Math.min(attemptMs, left)));
        break;
      } catch (error) {
        if (error instanceof GuestAgentCommandError) throw error;
        // no answer yet: try again with a fresh id
      }
    }
    await this.ping(Math.max(1000, wait.deadline - Date.now()));
  }

  ping(timeoutMs = 10_000): Promise<void> {
    return this.execute('guest-ping', undefined, timeoutMs).then(() => undefined);
  }

  async info(): Promise<{ version: string; commands: string[] }> {
    const info = (await this.execute('guest-info')) as { version?: string; supported_commands?: { name: string; enabled: boolean }[] };
    return { version: info.version ?? 'unknown', commands: (info.supported_commands ?? []).filter((c) => c.enabled).map((c) => c.name) };
  }

  async spawn(path: string, args: readonly string[]): Promise<number> {
    const started = (await this.execute('guest-exec', { path, arg: [...args] })) as { pid: number };
    return started.pid;
  }

  async status(pid: number): Promise<GuestProcessStatus> {
    const status = (await this.execute('guest-exec-status', { pid })) as {
      exited: boolean;
      exitcode?: number;
      signal?: number;
      'out-data'?: string;
      'err-data'?: string;
    };
    if (!status.exited) return { exited: false };
    return {
      exited: true,
      exitCode: status.exitcode,
      signal: status.signal,
      stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString('utf8'),
      stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString('utf8'),
    };
  }

  async exec(path: string, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<GuestExecResult> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const started = (await this.execute('guest-exec', { path, arg: [...args], 'capture-output': true }, timeoutMs)) as { pid: number };
    // Short commands end within a few polls; long ones are polled every 250 ms.
    for (let pollMs = 10; ; pollMs = Math.min(250, pollMs * 2)) {
      const status = await this.status(started.pid);
      if (status.exited) {
        const { exited: _, ...result } = status;
        return result;
      }
      if (Date.now() > deadline) {
        await this.spawn('/bin/kill', ['-KILL', String(started.pid)]).catch(() => undefined);
        throw new XmeError(`${this.label}: ${[path, ...args].join(' ')} was still running after ${Math.round(timeoutMs / 1000)} s (killed)`);
      }
      await sleep(pollMs);
    }
  }

  async readFile(path: string): Promise<Buffer> {
    const handle = (await this.execute('guest-file-open', { path, mode: 'r' })) as number;
    const chunks: Buffer[] = [];
    try {
      for (;;) {
        const read = (await this.execute('guest-file-read', { handle, count: 1 << 20 })) as { count: number; 'buf-b64'?: string; eof: boolean };
        if (read.count > 0) chunks.push(Buffer.from(read['buf-b64'] ?? '', 'base64'));
        if (read.eof || read.count === 0) break;
      }
    } finally {
      await this.execute('guest-file-close', { handle }).catch(() => undefined);
    }
    return Buffer.concat(chunks);
  }

  /** Run one agent command and resolve with its "return" value (after a sync, if the stream may be stale). */
  execute(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<unknown> {
    return this.serialized(async () => {
      if (!this.synced) await this.sync(Math.min(timeoutMs, 10_000));
      const id = `xme-${this.nextId++}`;
      const reply = await this.request(
        command,
        Buffer.from(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`),
        (message) => message.id === id,
        timeoutMs,
      );
      if ('error' in reply) {
        const error = reply.error as { class?: string; desc?: string };
        throw new GuestAgentCommandError(command, error.class ?? 'Error', error.desc ?? '');
      }
      return reply.return;
    });
  }

  /** 0xFF, then guest-sync with a random id; every line up to its answer is stale. */
  private async sync(timeoutMs: number): Promise<void> {
    const id = crypto.randomInt(1, 2 ** 31);
    const request = Buffer.concat([FLUSH, Buffer.from(`${JSON.stringify({ execute: 'guest-sync', arguments: { id } })}\n`)]);
    await this.request('guest-sync', request, (message) => message.return === id, timeoutMs);
    this.synced = true;
  }

  private request(command: string, bytes: Buffer, accepts: Waiter['accepts'], timeoutMs: number): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new XmeError(`${this.label}'s connection is closed; cannot run ${command}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        // Its answer may still come: the stream is stale until the next sync.
        this.synced = false;
        reject(new XmeError(`${this.label} did not answer ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        accepts,
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.socket.write(bytes);
    });
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.chain.then(work, work);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    let newline: number;
    while ((newline = this.buffer.indexOf(0x0a)) >= 0) {
      // A delimited reply starts with 0xFF; a flush byte may sit anywhere in stale data: drop them all.
      const line = Buffer.from(this.buffer.subarray(0, newline).filter((byte) => byte !== 0xff))
        .toString('utf8')
        .trim();
      this.buffer = this.buffer.subarray(newline + 1);
      if (!line) continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        this.discarded++; // half a line left from before
        continue;
      }
      if (typeof message !== 'object' || message === null) {
        this.discarded++;
        continue;
      }
      const waiter = this.waiter;
      if (waiter?.accepts(message as Record<string, unknown>)) {
        this.waiter = undefined;
        waiter.resolve(message as Record<string, unknown>);
      } else {
        this.discarded++;
      }
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(new XmeError(`${this.label}'s connection closed (QEMU exited?)`));
  }

  close(): void {
    this.socket.destroy();
    this.onClose();
  }
}

function openSocket(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
