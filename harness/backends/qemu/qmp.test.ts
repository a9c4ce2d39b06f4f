/**
 * The QMP client against a scripted peer on a UNIX socket: a stand-in at the protocol seam only, to reach
 * cases a real QEMU does not produce on demand (error replies, out-of-order replies, a dropped connection).
 * The client is also exercised against real QEMU in qemu-backend.e2e.test.ts.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient, QmpCommandError } from './qmp.ts';

type Handler = (message: { execute: string; id: string; arguments?: Record<string, unknown> }, socket: net.Socket) => void;

let dir: string;
let server: net.Server;
let socketPath: string;
let received: string[];

function startPeer(handler: Handler): Promise<void> {
  received = [];
  server = net.createServer((socket) => {
    socket.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 } }, capabilities: [] } })}\r\n`);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        received.push(message.execute);
        if (message.execute === 'qmp_capabilities') socket.write(`${JSON.stringify({ return: {}, id: message.id })}\r\n`);
        else handler(message, socket);
      }
    });
  });
  return new Promise((resolve) => server.listen(socketPath, resolve));
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-qmp-test-'));
  socketPath = path.join(dir, 'qmp.sock');
});
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('QmpClient', () => {
  it('negotiates capabilities, reads the version and matches replies to commands by id', async () => {
    await startPeer((message, socket) => {
      // Answer in reverse order of arrival to prove matching is by id, not by order.
      setTimeout(
        () => socket.write(`${JSON.stringify({ return: `${message.execute}:${message.arguments?.['command-line'] ?? ''}`, id: message.id })}\n`),
        message.arguments?.['command-line'] === 'first' ? 50 : 0,
      );
    });
    const client = await QmpClient.connect(socketPath);
    expect(client.version).toBe('7.2.22');
    expect(received[0]).toBe('qmp_capabilities');
    const [first, second] = await Promise.all([client.hmp('first'), client.hmp('second')]);
    expect(first).toBe('human-monitor-command:first');
    expect(second).toBe('human-monitor-command:second');
    client.close();
  });

  it('turns an error reply into QmpCommandError with its class', async () => {
    await startPeer((message, socket) => {
      socket.write(`${JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${message.execute} has not been found` }, id: message.id })}\n`);
    });
    const client = await QmpClient.connect(socketPath);
    const failure = client.execute('no-such-command');
    await expect(failure).rejects.toBeInstanceOf(QmpCommandError);
    await expect(failure).rejects.toThrow(/CommandNotFound/);
    client.close();
  });

  it('delivers events and fails pending commands when the peer goes away', async () => {
    await startPeer((message, socket) => {
      if (message.execute === 'stop') {
        socket.write(`${JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } })}\n`);
        socket.write(`${JSON.stringify({ return: {}, id: message.id })}\n`);
      } else {
        socket.destroy(); // like QEMU exiting mid-command
      }
    });
    const client = await QmpClient.connect(socketPath);
    const events: string[] = [];
    client.on('event', (event) => events.push(event.event));
    await client.pause();
    expect(events).toEqual(['STOP']);
    await expect(client.execute('query-status')).rejects.toThrow(/closed before query-status answered/);
    expect(client.isOpen).toBe(false);
    await expect(client.execute('cont')).rejects.toThrow(/connection is closed/);
  });

  it('gives up with a clear error when nothing listens', async () => {
    server = net.createServer();
    await expect(QmpClient.connect(path.join(dir, 'absent.sock'), 300)).rejects.toThrow(/could not connect to QEMU's QMP socket/);
  });
});
