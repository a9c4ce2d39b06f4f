/** Everything the harness knows about an image's kernel from files alone: System.map, layout, build version. */
import fs from 'node:fs';
import type { GuestImage } from '../images/manifest.ts';
import { readBzImageVersion, type KernelVersion } from './bzimage.ts';
import { kernelLayout, type KernelLayout } from './kernel-layout.ts';
import { SystemMap } from './system-map.ts';

export interface KernelInfo {
  systemMap: SystemMap;
  layout: KernelLayout;
  /** From the booted vmlinuz: what linux_banner must say. */
  version: KernelVersion;
}

export function kernelInfoFromFiles(systemMapFile: string, vmlinuzFile: string): KernelInfo {
  const systemMap = SystemMap.parse(fs.readFileSync(systemMapFile, 'latin1'), systemMapFile);
  return { systemMap, layout: kernelLayout(systemMap), version: readBzImageVersion(vmlinuzFile) };
}

export function kernelInfo(image: GuestImage, systemMapFile = image.path('systemMap')): KernelInfo {
  return kernelInfoFromFiles(systemMapFile, image.path('vmlinuz'));
}
