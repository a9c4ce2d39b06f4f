import path from 'node:path';
import { execa, execaSync, type ResultPromise } from 'execa';
import { XmeError, errorMessage } from '../../util/errors.ts';
import { findOnPath } from '../../util/tools.ts';
import type { GuestImage, SystemImage } from '../../images/manifest.ts';
import type { DeviceWrite, Guest, GuestAgent, GuestRamKind, HostProcess, HostResidency, MemoryView, ProvisionOptions, TickCopy, VcpuAccess } from '../types.ts';
import type { GuestConsole } from '../../workloads/console-protocol.ts';
import { AppOutput, appWorkload } from '../../workloads/app-workloads.ts';
import { isAppWorkload, PAGE_SIZE } from '../../vocabulary.ts';
import type { AcceleratorChoice } from './accelerator.ts';
import { ProcessRam, SharedFileRam, type GuestRam } from './guest-ram.ts';
import { QmpClient } from './qmp.ts';
import { qemuArguments, type GuestLaunch } from './qemu-args.ts';
import { GuestAgentClient } from './guest-agent.ts';
import { SerialConsole, waitForBootMarker } from '../serial-console.ts';
import { FileFollower } from '../file-follower.ts';
import { startAppWorkload } from '../app-workload-run.ts';

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

/** A guest's files: RAM file (shared-file RAM), serial log, QMP socket; a system guest's overlay, agent socket and workload output. */
export type QemuGuestFiles = Readonly<Partial<Record<'memory' | 'disk' | 'agentSocket' | 'workloadLog', string>> & Record<'serialLog' | 'qmpSocket', string>>;

/** The guest's own copy-on-write overlay of a system image's read-only base disk. */
export function createOverlay(base: string, overlay: string): void {
  const result = execaSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay], { reject: false });
  if (result.exitCode !== 0) {
    throw new XmeError(`qemu-img could not create the overlay ${overlay}: ${String(result.stderr).trim().split('\n').pop() ?? `status ${result.exitCode}`}`);
  }
}

export class QemuGuest implements Guest {
  readonly memoryPages: number;
  readonly files: QemuGuestFiles;
  bootMs = Number.NaN;
  private readonly serial: SerialConsole;
  /** System guests: the guest agent (connected during the boot), the workload port's output and its parser. */
  private agentClient: GuestAgentClient | undefined;
  private readonly appOutput: AppOutput | undefined;
  private readonly appFollower: FileFollower | undefined;
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
    private readonly options: ProvisionOptions,
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
    if (image.kind === 'system') {
      const workload = options.workload.name;
      const output = new AppOutput(workload, isAppWorkload(workload) ? appWorkload(workload).meter?.(options.workload.params ?? {}) : undefined);
      this.appOutput = output;
      this.appFollower = new FileFollower(files.workloadLog!, (text, hostMs) => output.consume(text, hostMs));
      this.agent = {
        ping: (timeoutMs) => this.connectedAgent().ping(timeoutMs),
        info: () => this.connectedAgent().info(),
        exec: (file, args, execOptions) => this.connectedAgent().exec(file, args, execOptions),
        spawn: (file, args) => this.connectedAgent().spawn(file, args),
        status: (pid) => this.connectedAgent().status(pid),
        readFile: (file) => this.connectedAgent().readFile(file),
      };
    }
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

  /**
   * Create the guest's RAM file (shared-file: 0600, mapped) and, for a system image, its overlay of the base
   * disk; then start QEMU. Does not wait for the boot.
   */
  static start(start: GuestStart): QemuGuest {
    const bytes = start.options.memoryMiB * 1024 * 1024;
    const ram = start.options.guestRam ?? 'shared-file';
    const memoryFile = path.join(start.dir, `${start.id}.ram`);
    const image = start.image;
    const system =
      image.kind === 'system'
        ? {
            disk: path.join(start.dir, `${start.id}.qcow2`),
            agentSocket: path.join(start.dir, `${start.id}.qga`),
            workloadLog: path.join(start.dir, `${start.id}.workload.log`),
          }
        : undefined;
    const files = {
      ...(ram === 'shared-file' ? { memory: memoryFile } : {}),
      serialLog: path.join(start.dir, `${start.id}.serial.log`),
      qmpSocket: path.join(start.dir, `${start.id}.qmp`),
      ...system,
    };
    const common = {
      memoryMiB: start.options.memoryMiB,
      ram,
      memoryFile,
      qmpSocket: files.qmpSocket,
      serialLog: files.serialLog,
      kernel: image.path('vmlinuz'),
      accelerator: start.accelerator,
      ...(start.cpuModel ? { cpuModel: start.cpuModel } : {}),
      kaslr: start.options.kaslr,
    };
    let launch: GuestLaunch;
    if (image.kind === 'system') {
      createOverlay(image.path('baseDisk'), system!.disk);
      launch = { ...common, boot: 'system', initrd: image.path('initrd'), imageCommandLine: image.manifest.kernelCommandLine, ...system! };
    } else {
      launch = { ...common, initramfs: image.path('initramfs'), workload: start.options.workload };
    }
    const memory = ram === 'shared-file' ? SharedFileRam.create(memoryFile, bytes) : undefined;
    const argv = qemuArguments(launch);
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
    return new QemuGuest(start.id, start.image, start.options, subprocess, ram, bytes, memory, files, [start.qemuBinary, ...argv]);
  }

  /** Registers, virtual reads and translation through QMP/HMP (info registers, x, gva2gpa). */
  readonly vcpu: VcpuAccess = {
    translate: (kernelVirtual) => this.translate(kernelVirtual),
    idtBase: () => this.idtBase(),
    readVirtual: (address, length) => this.readVirtual(address, length),
  };

  /**
   * The serial log (-serial file:), followed by SerialConsole. A kernel image's workload reports its progress
   * there; a system image's application workload reports it on its own port (AppOutput: the tool's output),
   * whose XME- lines (the load's end) are found by lines() too.
   */
  readonly console: GuestConsole = {
    progress: () => {
      if (this.appOutput) {
        this.appFollower!.poll();
        return this.appOutput.progress;
      }
      this.serial.poll();
      return this.serial.progress;
    },
    lines: (prefix) => {
      this.serial.poll();
      this.appFollower?.poll();
      return [...this.serial.matching(prefix), ...(this.appOutput?.matching(prefix) ?? [])];
    },
  };

  /** The guest agent (system images only): commands run in the guest (guest-agent.ts). */
  readonly agent: GuestAgent | undefined;

  private connectedAgent(): GuestAgentClient {
    if (!this.agentClient?.isOpen) throw new XmeError(`guest ${this.id}'s agent is not connected (${this.alive() ? 'not booted' : this.exitDescription()})`);
    return this.agentClient;
  }

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

  /**
   * Wait until the guest is up, then connect QMP: a kernel image's guest prints the boot marker on the serial
   * console; a system image's guest is up when its guest agent answers (guest-sync, guest-ping).
   */
  async waitForBoot(deadline: number): Promise<void> {
    if (this.image.kind === 'system') await this.waitForAgent(this.image, deadline);
    else await this.waitForMarker(deadline);
    this.bootMs = Date.now() - this.startedAt;
    this.serial.watch();
    this.appFollower?.watch();
    this.qmp = await QmpClient.connect(this.files.qmpSocket, Math.max(2000, deadline - Date.now()), () => this.alive());
    if (this.ramKind === 'anonymous-mergeable') this.memory = new ProcessRam(this.pid, await this.ramAddress(), this.ramBytes);
  }

  private async waitForMarker(deadline: number): Promise<void> {
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
  }

  /** The last console lines on one line, for an error message. */
  private consoleSummary(n = 3): string {
    this.serial.poll();
    const lines = this.serial
      .tail(n)
      .map((line) => line.trim())
      .filter(Boolean);
    return lines.length ? lines.join(' | ') : 'nothing printed';
  }

  /** A system guest is booted when its agent answers; it must run the image's kernel (uname -r). */
  private async waitForAgent(image: SystemImage, deadline: number): Promise<void> {
    const hint = `console log: ${this.files.serialLog}`;
    const seconds = Math.round((deadline - this.startedAt) / 1000);
    try {
      this.agentClient = await GuestAgentClient.open(this.files.agentSocket!, `guest ${this.id}'s agent`, Math.max(1000, deadline - Date.now()), () =>
        this.alive(),
      );
      await this.agentClient.waitUntilReady({
        deadline,
        stopWaiting: () => {
          if (!this.alive()) return this.exitDescription();
          this.serial.poll();
          return this.serial.failure && `its console shows: ${this.serial.failure}`;
        },
      });
    } catch (error) {
      const why = !this.alive() ? this.exitDescription() : (this.serial.failure ?? `no answer within ${seconds} s`);
      throw new XmeError(
        `guest ${this.id} did not come up: its guest agent never answered (${why}); last console lines: ${this.consoleSummary()}`,
        `${hint}; ${errorMessage(error)}`,
      );
    }
    const release = await this.agentClient.exec('/bin/uname', ['-r'], { timeoutMs: Math.max(5000, deadline - Date.now()) });
    if (release.stdout.trim() !== image.manifest.kernelRelease) {
      throw new XmeError(`guest ${this.id} booted kernel ${release.stdout.trim()}, but the image's kernel is ${image.manifest.kernelRelease}`, hint);
    }
  }

  /**
   * A system image's application workload: set up, wait until the application is ready, start the load, and
   * return once it counts ops (app-workload-run.ts). Nothing to do for busybox workloads (the guest's /init
   * started them) or system-idle.
   */
  async startWorkload(deadline: number): Promise<void> {
    const workload = this.options.workload;
    if (this.image.kind !== 'system' || !isAppWorkload(workload.name)) return;
    const manifest = this.image.manifest;
    await startAppWorkload({
      label: `guest ${this.id}`,
      agent: this.connectedAgent(),
      workload: { ...workload, name: workload.name },
      image: { pgbenchDatabase: manifest.pgbench.database, buildSource: manifest.buildSource },
      output: this.appOutput!,
      poll: () => this.appFollower!.poll(),
      alive: () => this.alive(),
      whyGone: () => this.exitDescription(),
      deadline,
    });
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
    this.appFollower?.unwatch();
    this.agentClient?.close();
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
