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
