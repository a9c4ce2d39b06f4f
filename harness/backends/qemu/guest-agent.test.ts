/**
 * The guest agent client's framing against a fake agent: a UNIX socket server written here that follows the
 * documented protocol (qemu-ga-ref(7), and what QEMU 7.2's qemu-ga was seen to answer in a real guest): one JSON
 * object a line; 0xFF flushes the parser and is answered with a parse error; guest-sync echoes its id; other
 * replies echo the request's "id"; guest-exec runs a real program (here, on the host) and guest-exec-status
 * reports it once exited (base64 output), then forgets the pid; guest-file-open/-read/-close read a file.
 * The fake can also hold stale lines, answer late, or start late, as a real channel does.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestAgentClient, GuestAgentCommandError } from './guest-agent.ts';

interface Process {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  out: Buffer[];
  err: Buffer[];
}

interface FakeOptions {
  /** Sent to the client as soon as it connects: stale lines from before (an earlier client's replies, half a line). */
  staleOnConnect?: string;
  /** Nothing is read until then (the agent is not running yet); what the client sent meanwhile is read after. */
  startAfterMs?: number;
  /** Delay before answering a command, by name. */
  delayMs?: Record<string, number>;
}

/** A fake qemu-ga. Records every request it parsed. */
class FakeAgent {
  readonly requests: Record<string, unknown>[] = [];
  readonly flushes: number[] = [];
  private readonly processes = new Map<number, Process>();
  private readonly files = new Map<number, { data: Buffer; at: number }>();
  private nextHandle = 1000;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly socketPath: string,
    private readonly options: FakeOptions = {},
  ) {
    this.server = net.createServer((socket) => this.serve(socket));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    if (this.options.staleOnConnect) socket.write(this.options.staleOnConnect);
    let pending = Buffer.alloc(0);
    let running = !this.options.startAfterMs;
    let queue = Promise.resolve();
    const drain = () => {
      for (let newline = pending.indexOf(0x0a); newline >= 0; newline = pending.indexOf(0x0a)) {
        let bytes = pending.subarray(0, newline);
        pending = pending.subarray(newline + 1);
        // 0xFF is not valid UTF-8: qemu-ga's parser flushes its state and answers with an error.
        const flush = bytes.lastIndexOf(0xff);
        if (flush >= 0) {
          this.flushes.push(this.requests.length);
          bytes = bytes.subarray(flush + 1);
          queue = queue.then(() => this.send(socket, { error: { class: 'GenericError', desc: "JSON parse error, stray '\uFFFD'" } }));
        }
        const text = bytes.toString('utf8').trim();
        if (!text) continue;
        const request = JSON.parse(text) as { execute: string; arguments?: Record<string, unknown>; id?: unknown };
        this.requests.push(request);
        queue = queue.then(async () => {
          const delay = this.options.delayMs?.[request.execute];
          if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
          const reply = await this.answer(request.execute, request.arguments ?? {});
          this.send(socket, request.id === undefined ? reply : { ...reply, id: request.id });
        });
      }
    };
    if (!running) {
      setTimeout(() => {
        running = true;
        drain();
      }, this.options.startAfterMs);
    }
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (running) drain();
    });
    socket.on('error', () => undefined);
  }

  private send(socket: net.Socket, message: Record<string, unknown>): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
  }

  private async answer(command: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    switch (command) {
      case 'guest-sync':
        return { return: args.id };
      case 'guest-ping':
        return { return: {} };
      case 'guest-info':
        return {
          return: {
            version: '7.2.22',
            supported_commands: [
              { enabled: true, name: 'guest-exec', 'success-response': true },
              { enabled: false, name: 'guest-get-devices', 'success-response': true },
            ],
          },
        };
      case 'guest-exec': {
        const child = spawn(args.path as string, (args.arg as string[] | undefined) ?? [], { stdio: ['ignore', 'pipe', 'pipe'] });
        const pid = await new Promise<number>((resolve, reject) => {
          child.once('spawn', () => resolve(child.pid!));
          child.once('error', reject);
        }).catch((error: Error) => error);
        if (pid instanceof Error) {
          return {
            error: { class: 'GenericError', desc: `Guest agent command failed, error was 'Failed to execute child process “${args.path}” (${pid.message})'` },
          };
        }
        const state: Process = { exited: false, out: [], err: [] };
        const capture = args['capture-output'] === true;
        child.stdout.on('data', (chunk: Buffer) => capture && state.out.push(chunk));
        child.stderr.on('data', (chunk: Buffer) => capture && state.err.push(chunk));
        child.on('close', (code, signal) => {
          state.exited = true;
          if (signal) state.signal = os.constants.signals[signal];
          else state.exitcode = code ?? 0;
        });
        this.processes.set(pid, state);
        return { return: { pid } };
      }
      case 'guest-exec-status': {
        const state = this.processes.get(args.pid as number);
        if (!state) return { error: { class: 'GenericError', desc: "Invalid parameter 'pid'" } };
        if (!state.exited) return { return: { exited: false } };
        this.processes.delete(args.pid as number);
        const data = (chunks: Buffer[]) => (chunks.length ? Buffer.concat(chunks).toString('base64') : undefined);
        return {
          return: {
            exited: true,
            ...(state.exitcode !== undefined ? { exitcode: state.exitcode } : { signal: state.signal }),
            ...(data(state.out) ? { 'out-data': data(state.out), 'out-truncated': false } : {}),
            ...(data(state.err) ? { 'err-data': data(state.err), 'err-truncated': false } : {}),
          },
        };
      }
      case 'guest-file-open': {
        try {
          const handle = this.nextHandle++;
          this.files.set(handle, { data: fs.readFileSync(args.path as string), at: 0 });
          return { return: handle };
        } catch (error) {
          return { error: { class: 'GenericError', desc: `failed to open file '${args.path}' (mode: 'r'): ${(error as Error).message}` } };
        }
      }
      case 'guest-file-read': {
        const file = this.files.get(args.handle as number);
        if (!file) return { error: { class: 'GenericError', desc: `handle '${args.handle}' has not been found` } };
        const chunk = file.data.subarray(file.at, file.at + ((args.count as number | undefined) ?? 4096));
        file.at += chunk.length;
        return { return: { count: chunk.length, 'buf-b64': chunk.toString('base64'), eof: file.at >= file.data.length } };
      }
      case 'guest-file-close':
        this.files.delete(args.handle as number);
        return { return: {} };
      default:
        return { error: { class: 'CommandNotFound', desc: `The command ${command} has not been found` } };
    }
  }
}

let dir: string;
let agents: FakeAgent[];
let clients: GuestAgentClient[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-qga-test-'));
  agents = [];
  clients = [];
});
afterEach(async () => {
  for (const client of clients) client.close();
  await Promise.all(agents.map((agent) => agent.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connected(options: FakeOptions = {}): Promise<{ agent: FakeAgent; client: GuestAgentClient }> {
  const agent = new FakeAgent(path.join(dir, `qga-${agents.length}.sock`), options);
  agents.push(agent);
  await agent.listen();
  const client = await GuestAgentClient.open(agent.socketPath, "guest g0's agent", 2000);
  clients.push(client);
  return { agent, client };
}

describe('guest agent client (against a fake agent that follows the protocol)', () => {
  it('syncs first: 0xFF then guest-sync with a random id, discarding stale lines and the flush error', async () => {
    const stale = `{"return": 424242}\n{"return": {"pid": 7}, "id": "xme-1"}\n{"return": {"exi`;
    const { agent, client } = await connected({ staleOnConnect: stale });
    await client.waitUntilReady({ deadline: Date.now() + 5000 });
    const [sync, ping] = agent.requests;
    expect(sync).toMatchObject({ execute: 'guest-sync', arguments: { id: expect.any(Number) } });
    expect((sync!.arguments as { id: number }).id).not.toBe(424242);
    expect(agent.flushes).toEqual([0]); // the 0xFF came right before the guest-sync
    expect(ping).toMatchObject({ execute: 'guest-ping', id: expect.stringMatching(/^xme-\d+$/) });
    // The two stale replies, the half line joined to the flush error's line, and nothing else.
    expect(client.discarded).toBe(3);
  });

  it('keeps syncing until an agent that starts late answers, discarding the replies to the earlier syncs', async () => {
    const { agent, client } = await connected({ startAfterMs: 700 });
    const started = Date.now();
    await client.waitUntilReady({ deadline: Date.now() + 5000, attemptMs: 200 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(650);
    const syncs = agent.requests.filter((r) => r.execute === 'guest-sync');
    expect(syncs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(syncs.map((r) => (r.arguments as { id: number }).id)).size).toBe(syncs.length);
    await expect(client.ping()).resolves.toBeUndefined();
  });

  it('gives up at the deadline, or at once when told why it cannot answer', async () => {
    const { client } = await connected({ startAfterMs: 60_000 });
    await expect(client.waitUntilReady({ deadline: Date.now() + 600, attemptMs: 200 })).rejects.toThrow(/did not answer guest-sync in time/);
    await expect(client.waitUntilReady({ deadline: Date.now() + 5000, attemptMs: 200, stopWaiting: () => 'QEMU ended (exit status 1)' })).rejects.toThrow(
      /cannot answer: QEMU ended \(exit status 1\)/,
    );
  });

  it('after a timeout, syncs again before the next command and drops the late answer', async () => {
    const { agent, client } = await connected({ delayMs: { 'guest-info': 500 } });
    await client.waitUntilReady({ deadline: Date.now() + 5000 });
    await expect(client.execute('guest-info', undefined, 100)).rejects.toThrow(/did not answer guest-info within 100 ms/);
    const before = client.discarded;
    await expect(client.ping()).resolves.toBeUndefined();
    // The late guest-info reply and the flush error came before the new sync's answer: both dropped.
    expect(client.discarded - before).toBe(2);
    expect(agent.requests.map((r) => r.execute)).toEqual(['guest-sync', 'guest-ping', 'guest-info', 'guest-sync', 'guest-ping']);
  });

  it('guest-info: the version and the enabled commands', async () => {
    const { client } = await connected();
    expect(await client.info()).toEqual({ version: '7.2.22', commands: ['guest-exec'] });
  });

  it('exec: runs the program, polls guest-exec-status, decodes base64 output and the exit status', async () => {
    const { agent, client } = await connected();
    const result = await client.exec('/bin/sh', ['-c', 'echo out; printf "é\\n" ; echo err >&2; sleep 0.2; exit 3']);
    expect(result).toEqual({ exitCode: 3, signal: undefined, stdout: 'out\né\n', stderr: 'err\n' });
    const polls = agent.requests.filter((r) => r.execute === 'guest-exec-status');
    expect(polls.length).toBeGreaterThan(1); // it was still running at the first poll
    expect(agent.requests.find((r) => r.execute === 'guest-exec')).toMatchObject({
      arguments: { path: '/bin/sh', arg: ['-c', expect.any(String)], 'capture-output': true },
    });
  });

  it('exec: a signal instead of an exit code; an agent error as such', async () => {
    const { client } = await connected();
    expect(await client.exec('/bin/sh', ['-c', 'kill -9 $$'])).toMatchObject({ exitCode: undefined, signal: 9 });
    const missing = client.exec('/nonexistent/program', []);
    await expect(missing).rejects.toBeInstanceOf(GuestAgentCommandError);
    await expect(missing).rejects.toThrow(/guest-exec failed: GenericError: .*nonexistent/);
  });

  it('exec: a program still running at the timeout is killed and named', async () => {
    const { agent, client } = await connected();
    await expect(client.exec('/bin/sleep', ['30'], { timeoutMs: 300 })).rejects.toThrow(/\/bin\/sleep 30 was still running after 0 s \(killed\)/);
    expect(agent.requests.at(-1)).toMatchObject({ execute: 'guest-exec', arguments: { path: '/bin/kill', arg: ['-KILL', expect.stringMatching(/^\d+$/)] } });
  });

  it('spawn and status: running, then exited once, then the pid is forgotten', async () => {
    const { client } = await connected();
    const pid = await client.spawn('/bin/sh', ['-c', 'sleep 1; exit 4']);
    expect(await client.status(pid)).toEqual({ exited: false });
    // Polled as a caller does: on a loaded host `sleep 1` can take seconds to end.
    let status = await client.status(pid);
    for (const deadline = Date.now() + 20_000; !status.exited && Date.now() < deadline; status = await client.status(pid)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toEqual({ exited: true, exitCode: 4, signal: undefined, stdout: '', stderr: '' });
    await expect(client.status(pid)).rejects.toThrow(/Invalid parameter 'pid'/);
  });

  it('readFile: the bytes of a file, read in chunks until eof, and the handle closed', async () => {
    const { agent, client } = await connected();
    const file = path.join(dir, 'data.bin');
    const bytes = Buffer.alloc(2.5 * (1 << 20));
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131) & 0xff;
    fs.writeFileSync(file, bytes);
    expect((await client.readFile(file)).equals(bytes)).toBe(true);
    expect(agent.requests.filter((r) => r.execute === 'guest-file-read')).toHaveLength(3);
    expect(agent.requests.at(-1)).toMatchObject({ execute: 'guest-file-close' });
  });

  it('one request in flight at a time, each answered by its own id', async () => {
    const { client } = await connected({ delayMs: { 'guest-info': 50 } });
    const [info, ping, result] = await Promise.all([client.info(), client.ping(), client.exec('/bin/echo', ['hello'])]);
    expect(info.version).toBe('7.2.22');
    expect(ping).toBeUndefined();
    expect(result.stdout).toBe('hello\n');
  });

  it('fails what is pending when the connection closes', async () => {
    const { agent, client } = await connected({ delayMs: { 'guest-info': 5000 } });
    await client.waitUntilReady({ deadline: Date.now() + 5000 });
    const info = client.info();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await agent.close();
    await expect(info).rejects.toThrow(/connection closed/);
    expect(client.isOpen).toBe(false);
  });
});
