/** Helpers for end-to-end tests that boot real guests. */
import fs from 'node:fs';
import { execaSync } from 'execa';
import { buildImage } from '../images/build.ts';
import type { GuestImage } from '../images/manifest.ts';

/** The default image, built from Debian's packages on first use and reused after (as `xme image build`). */
export async function defaultImage(): Promise<GuestImage> {
  return (await buildImage('cloud', { onStep: (message) => process.stderr.write(`[e2e] ${message}\n`) })).image;
}

/** Whether a process with this PID exists and is not a zombie. */
export function processRunning(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}

/** PIDs of qemu-system processes whose command line contains `mention` (e.g. a runtime directory). */
export function qemuPids(mention = ''): number[] {
  const escaped = mention.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const result = execaSync('pgrep', ['-f', `qemu-system-x86_64 .*${escaped}`], { reject: false });
  return result.stdout.split('\n').filter(Boolean).map(Number);
}
