/**
 * Follows a file that a hypervisor appends to (a console log, a virtio-serial port's file chardev): what was
 * added since the last poll goes to `onText`, with the host time it was read. Polled on demand and, once
 * watched, every intervalMs, so that what arrives is stamped on arrival (±intervalMs). The timer never keeps
 * Node alive.
 */
import fs from 'node:fs';

export class FileFollower {
  private offset = 0;
  private watcher: NodeJS.Timeout | undefined;
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    readonly file: string,
    private readonly onText: (text: string, hostMs: number) => void,
  ) {}

  watch(intervalMs = 100): void {
    this.watcher ??= setInterval(() => this.poll(), intervalMs);
    this.watcher.unref();
  }

  unwatch(): void {
    clearInterval(this.watcher);
    this.watcher = undefined;
  }

  /** Read what was appended since the last poll (nothing if the file does not exist yet). */
  poll(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const chunk = Buffer.alloc(64 * 1024);
      for (;;) {
        const read = fs.readSync(fd, chunk, 0, chunk.length, this.offset);
        if (read <= 0) break;
        this.offset += read;
        // stream: a UTF-8 character split between two reads is decoded once whole
        const text = this.decoder.decode(chunk.subarray(0, read), { stream: true });
        if (text) this.onText(text, Date.now());
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}
