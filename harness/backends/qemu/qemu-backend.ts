/**
 * The local default backend: identical guests under QEMU, booted concurrently. QEMU does not merge pages
 * here, so sharing is accounted by the ledger, not enforced (enforcesSharing = false).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { XmeError } from '../../util/errors.ts';
import { findOnPath, requireTool } from '../../util/tools.ts';
import { onCleanup } from '../../util/cleanup.ts';
import type { GuestImage } from '../../images/manifest.ts';
import type { Backend, BackendInfo, Guest, ProvisionOptions } from '../types.ts';
import { chooseAccelerator, type AcceleratorChoice, type AcceleratorRequest } from './accelerator.ts';
import { QemuGuest } from './qemu-guest.ts';
import { createRuntimeDir, removeRuntimeDir, sweepStaleRuntimeDirs } from './runtime-dir.ts';
import { perGuestWorkload } from '../guest-command-line.ts';
import { APP_WORKLOADS } from '../../vocabulary.ts';

export interface QemuBackendOptions {
  accelerator?: AcceleratorRequest;
  /** Copy each guest's serial log here when the backend closes (e.g. into results/<run-id>/). */
  keepLogsIn?: string;
  /** Told about notable events (stale directories removed, …). */
  onNotice?: (message: string) => void;
}

export async function qemuVersion(qemuBinary: string): Promise<string> {
  const { stdout } = await execa(qemuBinary, ['--version']);
  return /version (\S+)/.exec(stdout)?.[1] ?? 'unknown';
}

export class QemuBackend implements Backend {
  readonly name = 'qemu';
  readonly enforcesSharing = false;
  private readonly guests: QemuGuest[] = [];
  private dir: string | undefined;
  private closing: Promise<void> | undefined;
  private unregisterCleanup: (() => void) | undefined;

  private constructor(
    private readonly qemuBinary: string,
    private readonly version: string,
    private readonly accelerator: AcceleratorChoice,
    private readonly options: QemuBackendOptions,
  ) {}

  static async create(options: QemuBackendOptions = {}): Promise<QemuBackend> {
    const qemuBinary = requireTool('qemu-system-x86_64');
    const [version, accelerator] = await Promise.all([qemuVersion(qemuBinary), chooseAccelerator(qemuBinary, options.accelerator ?? 'auto')]);
    return new QemuBackend(qemuBinary, version, accelerator, options);
  }

  info(): BackendInfo {
    return {
      name: this.name,
      version: `QEMU ${this.version}`,
      accelerator: this.accelerator.accelerator,
      acceleratorReason: this.accelerator.reason,
      cpuModel: this.accelerator.cpuModel,
    };
  }

  /** Where this backend's guest files are (undefined before provision). */
  get runtimeDir(): string | undefined {
    return this.dir;
  }

  async provision(image: GuestImage, count: number, options: ProvisionOptions): Promise<Guest[]> {
    if (this.closing) throw new Error('backend is closed');
    if (!Number.isInteger(count) || count < 1) throw new XmeError(`guest count must be a positive integer, got ${count}`);
    const workloads: readonly string[] = image.kind === 'system' ? APP_WORKLOADS : image.manifest.workloads;
    if (!workloads.includes(options.workload.name)) {
      throw new XmeError(`image '${image.name}' has no workload '${options.workload.name}'`, `known: ${workloads.join(', ')}`);
    }
    const otherKind = options.guestImages?.find((other) => other.kind !== image.kind);
    if (otherKind)
      throw new XmeError(`a mixed fleet boots images of one kind: '${otherKind.name}' is a ${otherKind.kind} image, '${image.name}' a ${image.kind} image`);
    if (image.kind === 'system' && !findOnPath('qemu-img')) {
      throw new XmeError(
        'qemu-img is not installed (each guest of a system image boots its own overlay of the base disk)',
        'install it with: apt-get install qemu-utils',
      );
    }
    for (const stale of sweepStaleRuntimeDirs()) this.options.onNotice?.(`removed ${stale}, left by an xme process that no longer runs`);
    this.dir ??= createRuntimeDir();
    this.unregisterCleanup ??= onCleanup({
      name: `QEMU guests in ${this.dir}`,
      run: () => this.close(),
      runSync: () => this.closeSync(),
    });

    const started: QemuGuest[] = [];
    for (let i = 0; i < count; i++) {
      const cpuModel = options.cpuModels?.length ? options.cpuModels[i % options.cpuModels.length] : undefined;
      const guestImage = options.guestImages?.length ? options.guestImages[i % options.guestImages.length]! : image;
      const guest = QemuGuest.start({
        id: `g${this.guests.length}`,
        dir: this.dir,
        qemuBinary: this.qemuBinary,
        image: guestImage,
        accelerator: this.accelerator,
        ...(cpuModel ? { cpuModel } : {}),
        options: { ...options, workload: perGuestWorkload(options.workload, this.guests.length) },
      });
      this.guests.push(guest);
      started.push(guest);
    }
    // Guests boot concurrently under TCG; on 2 cores 8 busybox guests take ~21 s when quiet, and 2 guests missed
    // 50 s at load 9. A real Debian system takes ~25 s alone and ~38 s three at once (FACTS, 2026-12-01).
    const bootBudget = image.kind === 'system' ? 90_000 + 30_000 * count : 60_000 + 15_000 * count;
    const deadline = Date.now() + (options.bootTimeoutMs ?? bootBudget);
    await Promise.all(
      started.map(async (guest) => {
        await guest.waitForBoot(deadline);
        options.onGuestBooted?.(guest, guest.bootMs);
      }),
    );
    // Application workloads start once every guest is up (each counts a first op before provision resolves).
    const workloadDeadline = Date.now() + (options.bootTimeoutMs ?? 120_000 + 30_000 * count);
    await Promise.all(started.map((guest) => guest.startWorkload(workloadDeadline)));
    return started;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.guests.map((guest) => guest.stop()));
      this.keepLogs();
      if (this.dir) removeRuntimeDir(this.dir);
      this.unregisterCleanup?.();
    })();
    return this.closing;
  }

  private keepLogs(): void {
    if (!this.options.keepLogsIn) return;
    fs.mkdirSync(this.options.keepLogsIn, { recursive: true });
    for (const guest of this.guests) {
      try {
        fs.copyFileSync(guest.files.serialLog, path.join(this.options.keepLogsIn, path.basename(guest.files.serialLog)));
      } catch {
        // a guest whose QEMU never started has no log
      }
    }
  }

  /** For process exit: kill every QEMU by PID and remove the directory, synchronously. */
  private closeSync(): void {
    for (const guest of this.guests) guest.killNow();
    if (this.dir) removeRuntimeDir(this.dir);
  }
}
