import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { XmeError } from '../../util/errors.ts';
import { findOnPath } from '../../util/tools.ts';
import type { GuestImage } from '../../images/manifest.ts';
import type { DeviceWrite, Guest, GuestRamKind, HostProcess, HostResidency, MemoryView, ProvisionOptions, TickCopy, VcpuAccess } from '../types.ts';
import type { GuestConsole } from '../../workloads/console-protocol.ts';
import { PAGE_SIZE } from '../../vocabulary.ts';
import type { AcceleratorChoice } from './accelerator.ts';
import { ProcessRam, SharedFileRam, type GuestRam } from './guest-ram.ts';
import { QmpClient } from './qmp.ts';
import { qemuArguments } from './qemu-args.ts';
import { SerialConsole, waitForBootMarker } from '../serial-console.ts';

export interface GuestStart {
  id: string;
  dir: string;
  qemuBinary: string;
  image: GuestImage;
  accelerator: AcceleratorChoice;
  /** Overrides the accelerator's CPU model for this guest. */
  cpuModel?: string;
  options: ProvisionOptions;
}

export class QemuGuest implements Guest {
  readonly memoryPages: number;
  readonly files: Readonly<Partial<Record<'memory', string>> & Record<'serialLog' | 'qmpSocket', string>>;
  bootMs = Number.NaN;
  private readonly serial: SerialConsole;
  /** Set at start (shared file) or once QEMU answers where its RAM is (anonymous: after the boot). */
  private memory: GuestRam | undefined;
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
    readonly ramKind: GuestRamKind,
    private readonly ramBytes: number,
    memory: GuestRam | undefined,
    files: QemuGuest['files'],
    argv: string[],
  ) {
    this.memory = memory;
    this.memoryPages = ramBytes / PAGE_SIZE;
    this.files = files;
    this.serial = new SerialConsole(files.serialLog);
    // Set only where RAM is anonymous memory of QEMU (its place is known after the boot: waitForBoot).
    this.hostProcess =
      ramKind === 'anonymous-mergeable'
        ? { memory: () => (this.memory instanceof ProcessRam ? { pid: this.pid, address: this.memory.address, bytes: this.memory.bytes } : undefined) }
        : undefined;
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

  /** Create the guest's RAM file (shared-file: 0600, mapped), and start QEMU. Does not wait for the boot. */
  static start(start: GuestStart): QemuGuest {
    const bytes = start.options.memoryMiB * 1024 * 1024;
    const ram = start.options.guestRam ?? 'shared-file';
    const memoryFile = path.join(start.dir, `${start.id}.ram`);
    const files = {
      ...(ram === 'shared-file' ? { memory: memoryFile } : {}),
      serialLog: path.join(start.dir, `${start.id}.serial.log`),
      qmpSocket: path.join(start.dir, `${start.id}.qmp`),
    };
    const memory = ram === 'shared-file' ? SharedFileRam.create(memoryFile, bytes) : undefined;
    const argv = qemuArguments({
      memoryMiB: start.options.memoryMiB,
      ram,
      memoryFile,
      qmpSocket: files.qmpSocket,
      serialLog: files.serialLog,
      kernel: start.image.path('vmlinuz'),
      initramfs: start.image.path('initramfs'),
      accelerator: start.accelerator,
      ...(start.cpuModel ? { cpuModel: start.cpuModel } : {}),
      kaslr: start.options.kaslr,
      workload: start.options.workload,
    });
    // setpriv --pdeathsig: if the harness itself is killed with SIGKILL, the kernel ends QEMU too.
    const setpriv = findOnPath('setpriv');
    const [file, args] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', start.qemuBinary, ...argv]] : [start.qemuBinary, argv];
    const subprocess = execa(file, args, {
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: true,
    });
    return new QemuGuest(start.id, start.image, subprocess, ram, bytes, memory, files, [start.qemuBinary, ...argv]);
  }

  /** Registers, virtual reads and translation through QMP/HMP (info registers, x, gva2gpa). */
  readonly vcpu: VcpuAccess = {
    translate: (kernelVirtual) => this.translate(kernelVirtual),
    idtBase: () => this.idtBase(),
    readVirtual: (address, length) => this.readVirtual(address, length),
  };

  /** The serial log (-serial file:), followed by SerialConsole. */
  readonly console: GuestConsole = {
    progress: () => {
      this.serial.poll();
      return this.serial.progress;
    },
    lines: (prefix) => {
      this.serial.poll();
      return this.serial.matching(prefix);
    },
  };

  /** Pages that cost the host a frame of their own (guest-ram.ts: file holes and zero-page mappings do not). */
  readonly hostResidency: HostResidency = { residentPages: () => this.ram().residentPages() };

  /** One view of all guest RAM: the mapped file, or, during a tick, the copy of anonymous RAM; else none. */
  readonly memoryView: MemoryView = {
    all: () => {
      const ram = this.ram();
      return ram.kind === 'shared-file' || (ram instanceof ProcessRam && ram.hasTickCopy) ? ram.pages(0, this.memoryPages) : undefined;
    },
  };

  /**
   * Anonymous RAM is copied once per tick (ProcessRam). Shared-file RAM needs no copy, but it keeps the ability
   * (a copy that does nothing, as before the seam had abilities), so that runs report memory_copy_cpu_ms as
   * they did.
   */
  readonly tickCopy: TickCopy = {
    copyForTick: (residency) => this.ram().copyForTick?.(residency ?? this.ram().residentPages()),
    dropTickCopy: () => this.memory?.dropTickCopy?.(),
    readPagesInto: (firstGfn, count, target, offset) => {
      const ram = this.ram();
      // During a tick, anonymous RAM is served from its one copy (copyForTick); otherwise read it.
      if (ram instanceof ProcessRam && !ram.hasTickCopy) ram.readInto(firstGfn, count, target, offset);
      else ram.pages(firstGfn, count).copy(target, offset);
    },
  };

  readonly hostProcess: HostProcess | undefined;

  /** pwrite into guest RAM (the file shared with QEMU, or QEMU's memory): the guest sees the bytes at once. */
  readonly deviceWrite: DeviceWrite = {
    writeMemory: async (gfn, offset, bytes) => {
      if (!Number.isInteger(gfn) || gfn < 0 || gfn >= this.memoryPages || offset < 0 || offset + bytes.length > PAGE_SIZE) {
        throw new RangeError(`write of ${bytes.length} bytes at gfn ${gfn}+${offset} is outside guest ${this.id}'s memory`);
      }
      await this.ram().write(gfn, offset, bytes);
    },
  };

  alive(): boolean {
    return this.exit === undefined;
  }

  /** Why QEMU is gone, for error messages. */
  private exitDescription(): string {
    const how = this.exit?.signal ? `killed by ${this.exit.signal}` : `exit status ${this.exit?.code}`;
    const stderr = this.stderrTail.trim().split('\n').filter(Boolean).pop();
    const consoleTail = this.serial.failure ?? this.serial.tail(1)[0];
    return [`QEMU ended (${how})`, stderr && `qemu: ${stderr}`, consoleTail && `console: ${consoleTail.trim()}`].filter(Boolean).join('; ');
  }

  /** Wait for the boot marker on the serial console, then connect QMP. */
  async waitForBoot(deadline: number): Promise<void> {
    await waitForBootMarker(this.serial, {
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
    this.serial.watch();
    this.qmp = await QmpClient.connect(this.files.qmpSocket, Math.max(2000, deadline - Date.now()), () => this.alive());
    if (this.ramKind === 'anonymous-mergeable') this.memory = new ProcessRam(this.pid, await this.ramAddress(), this.ramBytes);
  }

  /** Where QEMU keeps guest-physical address 0 in its own address space (HMP gpa2hva). */
  private async ramAddress(): Promise<number> {
    const reply = await this.monitor().hmp('gpa2hva 0');
    const match = /is (0x[0-9a-f]+)/i.exec(reply);
    if (!match) throw new XmeError(`guest ${this.id}: QEMU did not say where its RAM is: ${reply.trim()}`);
    return Number(BigInt(match[1]!));
  }

  private ram(): GuestRam {
    if (!this.memory) throw new XmeError(`guest ${this.id}'s memory is not reachable yet (${this.alive() ? 'not booted' : this.exitDescription()})`);
    return this.memory;
  }

  pages(firstGfn: number, count: number): Buffer {
    return this.ram().pages(firstGfn, count);
  }

  private monitor(): QmpClient {
    if (!this.qmp?.isOpen) throw new XmeError(`guest ${this.id} has no monitor connection (${this.alive() ? 'not booted' : this.exitDescription()})`);
    return this.qmp;
  }

  private async translate(kernelVirtual: bigint): Promise<bigint> {
    const reply = await this.monitor().hmp(`gva2gpa 0x${kernelVirtual.toString(16)}`);
    const match = /gpa:\s*(0x[0-9a-f]+)/i.exec(reply);
    if (!match) throw new XmeError(`guest ${this.id}: cannot translate 0x${kernelVirtual.toString(16)}: ${reply.trim()}`);
    return BigInt(match[1]!);
  }

  private async idtBase(): Promise<bigint> {
    const registers = await this.monitor().hmp('info registers');
    const match = /^IDT=\s*([0-9a-f]+)\s/m.exec(registers);
    if (!match) throw new XmeError(`guest ${this.id}: no IDT in 'info registers'`);
    return BigInt(`0x${match[1]}`);
  }

  private async readVirtual(address: bigint, length: number): Promise<Buffer> {
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

  /** Lines the guest printed last (for diagnostics). */
  consoleTail(n = 5): string[] {
    this.serial.poll();
    return this.serial.tail(n);
  }

  /** Graceful stop (QMP quit), then SIGKILL by PID if QEMU is still there; unmaps guest memory. */
  async stop(graceMs = 3000): Promise<void> {
    this.serial.unwatch();
    if (this.alive() && this.qmp?.isOpen) await this.qmp.quit(graceMs).catch(() => undefined);
    this.qmp?.close();
    if (this.alive()) {
      this.killNow();
      await Promise.race([this.subprocess.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    this.memory?.close();
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
