/** The backends xme can run on, by name. */
import type { Backend } from './types.ts';
import type { AcceleratorRequest } from './qemu/accelerator.ts';
import { QemuBackend } from './qemu/qemu-backend.ts';

export const BACKENDS = ['qemu', 'xen'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendOptions {
  accelerator?: AcceleratorRequest;
  keepLogsIn?: string;
  onNotice?: (message: string) => void;
}

export async function createBackend(name: BackendName, options: BackendOptions): Promise<Backend> {
  if (name === 'xen') {
    // Loaded only when asked for: it needs libxenctrl, which a QEMU-only machine may not have.
    const { XenBackend } = await import('./xen/xen-backend.ts');
    return XenBackend.create({ onNotice: options.onNotice, keepLogsIn: options.keepLogsIn });
  }
  return QemuBackend.create(options);
}

/** Fail early, before a results folder is made, when a backend cannot run on this machine. */
export async function checkBackendAvailable(name: BackendName): Promise<void> {
  if (name === 'xen') {
    const { XenBackend } = await import('./xen/xen-backend.ts');
    XenBackend.checkHost();
  }
}

/**
 * Where a run's backends come from: one per repetition (fresh guests each time). The runner takes this
 * instead of a backend name so that its tick loop can run on a stand-in (harness/testing/fake-backend.ts).
 */
export interface BackendFactory {
  /** Fail early, before a results folder is made, when the backend cannot run on this machine. */
  check(): Promise<void>;
  create(options: BackendOptions): Promise<Backend>;
}

/** The registry's backend of this name: what `xme run` uses. */
export function backendFactory(name: BackendName): BackendFactory {
  return { check: () => checkBackendAvailable(name), create: (options) => createBackend(name, options) };
}
