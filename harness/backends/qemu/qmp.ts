/**
 * A minimal QMP (QEMU Machine Protocol) client over a UNIX socket: the greeting, capability negotiation,
 * commands matched to replies by id, and asynchronous events. Used for pause/resume/quit and for
 * human-monitor-command (`info registers`, `gva2gpa`, `xp`).
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { XmeError } from '../../util/errors.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  command: string;
}

/** An error QEMU answered with ({"error": {"class", "desc"}}). */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** QEMU's version from the greeting, e.g. "7.2.22". */
  version = '';

  private constructor(private readonly socket: net.Socket) {
    super();
  }

  /**
   * Connect to a QMP socket, retrying while QEMU has not created it yet, and negotiate capabilities.
   * `alive` lets the caller stop waiting as soon as the QEMU process has exited.
   */
  static async connect(socketPath: string, timeoutMs = 10_000, alive: () => boolean = () => true): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    let lastError: Error | undefined;
    while (Date.now() < deadline && alive()) {
      try {
        const socket = await openSocket(socketPath);
        const client = new QmpClient(socket);
        await client.handshake(Math.max(1000, deadline - Date.now()));
        return client;
      } catch (error) {
        lastError = error as Error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new XmeError(
      `could not connect to QEMU's QMP socket ${socketPath}: ${lastError?.message ?? 'QEMU exited'}`,
      'see the guest serial log for why QEMU stopped',
    );
  }

  private handshake(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error('no QMP greeting'));
      }, timeoutMs);
      this.socket.setEncoding('utf8');
      let greeted = false;
      this.socket.on('data', (chunk: string) => {
        this.buffer += chunk;
        let newline: number;
        while ((newline = this.buffer.indexOf('\n')) >= 0) {
          const line = this.buffer.slice(0, newline).trim();
          this.buffer = this.buffer.slice(newline + 1);
          if (!line) continue;
          let message: Record<string, unknown>;
          try {
            message = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue; // QEMU only sends JSON; ignore anything else rather than dying on it
          }
          if (!greeted && 'QMP' in message) {
            greeted = true;
            this.version = greetingVersion(message);
            this.execute('qmp_capabilities').then(
              () => {
                clearTimeout(timer);
                resolve();
              },
              (error: Error) => {
                clearTimeout(timer);
                reject(error);
              },
            );
            continue;
          }
          this.dispatch(message);
        }
      });
      this.socket.on('close', () => this.onClose());
      this.socket.on('error', () => {
        // 'close' follows and fails whatever is pending
      });
    });
  }

  private dispatch(message: Record<string, unknown>): void {
    if (typeof message.event === 'string') {
      this.emit('event', message as unknown as QmpEvent);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id ? this.pending.get(id) : undefined;
    if (!id || !pending) return;
    this.pending.delete(id);
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(new QmpCommandError(pending.command, error.class ?? 'Error', error.desc ?? ''));
    } else {
      pending.resolve(message.return);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const pending of this.pending.values()) {
      pending.reject(new Error(`QMP connection closed before ${pending.command} answered (QEMU exited?)`));
    }
    this.pending.clear();
    this.emit('close');
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Run a QMP command and resolve with its "return" value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP connection is closed; cannot run ${command}`));
    const id = `xme-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        command,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`);
    });
  }

  /** A human monitor (HMP) command through QMP, e.g. "info registers" or "gva2gpa 0xffffffff81000000". */
  hmp(commandLine: string, timeoutMs?: number): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, timeoutMs);
  }

  pause(): Promise<unknown> {
    return this.execute('stop');
  }

  resume(): Promise<unknown> {
    return this.execute('cont');
  }

  /** Ask QEMU to exit; resolves when the connection closes (or after timeoutMs). */
  async quit(timeoutMs = 3000): Promise<void> {
    if (this.closed) return;
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    this.execute('quit').catch(() => undefined); // QEMU may close the socket before answering
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    this.close();
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

function greetingVersion(greeting: Record<string, unknown>): string {
  const qemu = (greeting.QMP as { version?: { qemu?: { major: number; minor: number; micro: number } } }).version?.qemu;
  return qemu ? `${qemu.major}.${qemu.minor}.${qemu.micro}` : 'unknown';
}
