/**
 * One QEMU guest: its process (ended by PID only), its RAM file mapped into the harness, its QMP connection
 * and its serial console.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { XmeError } from '../../util/errors.ts';
import { findOnPath } from '../../util/tools.ts';
import type { GuestImage } from '../../images/manifest.ts';
import { PAGE_SIZE, type Guest, type ProvisionOptions, type WorkloadProgress } from '../types.ts';
import type { AcceleratorChoice } from './accelerator.ts';
import { residentPages } from './residency.ts';
import { MappedFile } from './mapped-file.ts';
import { QmpClient } from './qmp.ts';
import { qemuArguments } from './qemu-args.ts';
import { SerialConsole, waitForBootMarker } from './serial-console.ts';

export interface GuestStart {
  id: string;
  dir: string;
  qemuBinary: string;
  image: GuestImage;
  accelerator: AcceleratorChoice;
  options: ProvisionOptions;
}

export class QemuGuest implements Guest {
  readonly memoryPages: number;
  readonly canIntrospectVcpu = true;
  readonly files: Readonly<Record<'memory' | 'serialLog' | 'qmpSocket', string>>;
  bootMs = Number.NaN;
  private readonly console: SerialConsole;
  private readonly memory: MappedFile;
  private qmp: QmpClient | undefined;
  private exit: { code: number | undefined; signal: string | undefined } | undefined;
  private stderrTail = '';
  private readonly startedAt = Date.now();
  readonly pid: number;
  readonly argv: readonly string[];

  private constructor(
    readonly id: string,
    readonly image: GuestImage,
    private readonly subprocess: ResultPromise,
    memory: MappedFile,
    files: QemuGuest['files'],
    argv: string[],
  ) {
    this.memory = memory;
    this.memoryPages = memory.bytes / PAGE_SIZE;
    this.files = files;
    this.console = new SerialConsole(files.serialLog);
    this.argv = argv;
    if (subprocess.pid === undefined) throw new XmeError(`QEMU for guest ${id} did not start`);
    this.pid = subprocess.pid;
    subprocess.stderr?.setEncoding('utf8');
    subprocess.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4096);
    });
    subprocess.then(
      (result) => {
        this.exit = { code: result.exitCode, signal: result.signal };
      },
      () => {
        this.exit = { code: undefined, signal: 'spawn failed' };
      },
    );
  }

  /** Create the guest's RAM file (0600), map it, and start QEMU. Does not wait for the boot. */
  static start(start: GuestStart): QemuGuest {
    const bytes = start.options.memoryMiB * 1024 * 1024;
    const files = {
      memory: path.join(start.dir, `${start.id}.ram`),
      serialLog: path.join(start.dir, `${start.id}.serial.log`),
      qmpSocket: path.join(start.dir, `${start.id}.qmp`),
    };
    // Created here, not by QEMU, so that its mode is 0600 whatever QEMU's umask is.
    const fd = fs.openSync(files.memory, 'wx', 0o600);
    try {
      fs.ftruncateSync(fd, bytes);
    } finally {
      fs.closeSync(fd);
    }
    const memory = MappedFile.open(files.memory, bytes);
    const argv = qemuArguments({
      memoryMiB: start.options.memoryMiB,
      memoryFile: files.memory,
      qmpSocket: files.qmpSocket,
      serialLog: files.serialLog,
      kernel: start.image.path('vmlinuz'),
      initramfs: start.image.path('initramfs'),
      accelerator: start.accelerator,
      kaslr: start.options.kaslr,
      workload: start.options.workload,
    });
    // setpriv --pdeathsig: if the harness itself is killed with SIGKILL, the kernel ends QEMU too.
    const setpriv = findOnPath('setpriv');
    const [file, args] = setpriv
      ? [setpriv, ['--pdeathsig', 'KILL', '--', start.qemuBinary, ...argv]]
      : [start.qemuBinary, argv];
    const subprocess = execa(file, args, {
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
    });
    return new QemuGuest(start.id, start.image, subprocess, memory, files, [start.qemuBinary, ...argv]);
  }

  alive(): boolean {
    return this.exit === undefined;
  }

  /** Why QEMU is gone, for error messages. */
  private exitDescription(): string {
    const how = this.exit?.signal ? `killed by ${this.exit.signal}` : `exit status ${this.exit?.code}`;
    const stderr = this.stderrTail.trim().split('\n').filter(Boolean).pop();
    const consoleTail = this.console.failure ?? this.console.tail(1)[0];
    return [`QEMU ended (${how})`, stderr && `qemu: ${stderr}`, consoleTail && `console: ${consoleTail.trim()}`]
      .filter(Boolean)
      .join('; ');
  }

  /** Wait for the boot marker on the serial console, then connect QMP. */
  async waitForBoot(deadline: number): Promise<void> {
    await waitForBootMarker(this.console, {
      label: `guest ${this.id}`,
      log: this.files.serialLog,
      alive: () => this.alive(),
      whyGone: () => this.exitDescription(),
      startedAt: this.startedAt,
      deadline,
      expectedRelease: this.image.manifest.kernelRelease,
      pollMs: 50,
    });
    this.bootMs = Date.now() - this.startedAt;
    this.qmp = await QmpClient.connect(this.files.qmpSocket, Math.max(2000, deadline - Date.now()), () => this.alive());
  }

  pages(firstGfn: number, count: number): Buffer {
    return this.memory.pages(firstGfn, count);
  }

  private monitor(): QmpClient {
    if (!this.qmp?.isOpen) throw new XmeError(`guest ${this.id} has no monitor connection (${this.alive() ? 'not booted' : this.exitDescription()})`);
    return this.qmp;
  }

  async translate(kernelVirtual: bigint): Promise<bigint> {
    const reply = await this.monitor().hmp(`gva2gpa 0x${kernelVirtual.toString(16)}`);
    const match = /gpa:\s*(0x[0-9a-f]+)/i.exec(reply);
    if (!match) throw new XmeError(`guest ${this.id}: cannot translate 0x${kernelVirtual.toString(16)}: ${reply.trim()}`);
    return BigInt(match[1]!);
  }

  async idtBase(): Promise<bigint> {
    const registers = await this.monitor().hmp('info registers');
    const match = /^IDT=\s*([0-9a-f]+)\s/m.exec(registers);
    if (!match) throw new XmeError(`guest ${this.id}: no IDT in 'info registers'`);
    return BigInt(`0x${match[1]}`);
  }

  async readVirtual(address: bigint, length: number): Promise<Buffer> {
    const quads = Math.ceil(length / 8);
    const reply = await this.monitor().hmp(`x /${quads}gx 0x${address.toString(16)}`);
    const values = [...reply.matchAll(/0x([0-9a-f]{16})/g)].map((m) => BigInt(`0x${m[1]}`));
    if (values.length !== quads || /Cannot access memory/i.test(reply)) {
      throw new XmeError(`guest ${this.id}: cannot read ${length} bytes at 0x${address.toString(16)}: ${reply.trim().split('\n')[0]}`);
    }
    const bytes = Buffer.alloc(quads * 8);
    values.forEach((value, i) => bytes.writeBigUInt64LE(value, i * 8));
    return bytes.subarray(0, length);
  }

  /** HMP command through QMP (info registers, xp, …). */
  hmp(commandLine: string): Promise<string> {
    return this.monitor().hmp(commandLine);
  }

  async pause(): Promise<void> {
    await this.monitor().pause();
  }

  async resume(): Promise<void> {
    await this.monitor().resume();
  }

  progress(): WorkloadProgress[] {
    this.console.poll();
    return this.console.progress;
  }

  /** pwrite into the RAM file (shared with QEMU, share=on): the guest sees the bytes at once. */
  async writeMemory(gfn: number, offset: number, bytes: Buffer): Promise<void> {
    if (!Number.isInteger(gfn) || gfn < 0 || gfn >= this.memoryPages || offset < 0 || offset + bytes.length > PAGE_SIZE) {
      throw new RangeError(`write of ${bytes.length} bytes at gfn ${gfn}+${offset} is outside guest ${this.id}'s memory`);
    }
    const fd = await fs.promises.open(this.files.memory, 'r+');
    try {
      await fd.write(bytes, 0, bytes.length, gfn * PAGE_SIZE + offset);
    } finally {
      await fd.close();
    }
  }

  /** Pages allocated in the RAM file (mincore on a fresh, untouched mapping: ≈ 3 ms per 256 MiB). */
  hostResidentPages(): Uint8Array {
    return residentPages(this.files.memory, this.memoryPages, { method: 'mincore' }).map;
  }

  consoleLines(prefix: string): string[] {
    this.console.poll();
    return this.console.matching(prefix);
  }

  /** Lines the guest printed last (for diagnostics). */
  consoleTail(n = 5): string[] {
    this.console.poll();
    return this.console.tail(n);
  }

  /** Graceful stop (QMP quit), then SIGKILL by PID if QEMU is still there; unmaps guest memory. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.alive() && this.qmp?.isOpen) await this.qmp.quit(graceMs).catch(() => undefined);
    this.qmp?.close();
    if (this.alive()) {
      this.killNow();
      await Promise.race([this.subprocess.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    this.memory.close();
  }

  /** Synchronous last resort: SIGKILL by PID. */
  killNow(): void {
    if (!this.alive()) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
