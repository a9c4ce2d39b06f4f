/**
 * The guest kernel's own memory topology and page counters, read from its memory: possible CPUs and their
 * per-CPU offsets, NUMA nodes (node_data[]) and their zones, and the global vm_zone_stat / vm_node_stat
 * counters with every CPU's not-yet-folded differential added (per_cpu_zonestats.vm_stat_diff,
 * per_cpu_nodestats.vm_node_stat_diff), which is what the kernel itself reports as exact
 * (global_zone_page_state_snapshot's sum). These are the known answers the page classes are measured against.
 */
import type { KernelMemory } from './kernel-memory.ts';
import { PageClassRefusal } from './kernel-memory.ts';
import type { LayoutProfile } from './layout-profile.ts';

export interface KernelZone {
  node: number;
  /** Index in node_zones (enum zone_type). */
  index: number;
  name: string;
  /** Virtual address of the struct zone. */
  address: bigint;
  startPfn: number;
  spannedPages: number;
  presentPages: number;
  /** __percpu pointers (add a CPU's per-CPU offset). */
  perCpuPageset: bigint;
  perCpuZonestats: bigint;
  /** Σ free_area[order].nr_free << order: the zone's buddy pages by its own lists' counts. */
  freeAreaPages: number;
}

export interface KernelNode {
  id: number;
  address: bigint;
  perCpuNodestats: bigint;
  zones: KernelZone[];
}

export interface KernelTopology {
  /** Possible CPUs and their per-CPU offsets (__per_cpu_offset[cpu]). */
  cpus: { id: number; offset: bigint }[];
  nodes: KernelNode[];
}

const MAX_CPUS = 8192;
const MAX_NODES = 1024;

export function readTopology(memory: KernelMemory, profile: LayoutProfile): KernelTopology {
  const guest = memory.guest.id;
  const cpuCount = memory.symbolBytes('nr_cpu_ids', 4).readUInt32LE(0);
  if (cpuCount === 0 || cpuCount > MAX_CPUS) throw new PageClassRefusal(guest, 'topology', `nr_cpu_ids reads ${cpuCount}`);
  const possible = memory.symbolBytes('__cpu_possible_mask', Math.ceil(cpuCount / 64) * 8);
  const offsets = memory.symbolBytes('__per_cpu_offset', cpuCount * 8);
  const cpus: KernelTopology['cpus'] = [];
  for (let cpu = 0; cpu < cpuCount; cpu++) {
    if (possible[cpu >> 3]! & (1 << (cpu & 7))) cpus.push({ id: cpu, offset: offsets.readBigUInt64LE(cpu * 8) });
  }
  if (cpus.length === 0) throw new PageClassRefusal(guest, 'topology', 'no CPU is possible (cpu_possible_mask is empty)');

  const nodeCount = memory.symbolBytes('nr_node_ids', 4).readUInt32LE(0);
  if (nodeCount === 0 || nodeCount > MAX_NODES) throw new PageClassRefusal(guest, 'topology', `nr_node_ids reads ${nodeCount}`);
  const nodePointers = memory.symbolBytes('node_data', nodeCount * 8);
  const zoneSize = profile.size('zone');
  const zoneCount = profile.field('pglist_data', 'node_zones').count ?? 0;
  const freeArea = profile.field('zone', 'free_area');
  const nrFree = profile.offset('free_area', 'nr_free');
  const nodes: KernelNode[] = [];
  for (let id = 0; id < nodeCount; id++) {
    const address = nodePointers.readBigUInt64LE(id * 8);
    if (address === 0n) continue;
    const pgdat = memory.read(address, profile.size('pglist_data'), `node_data[${id}]`);
    if (pgdat.readInt32LE(profile.offset('pglist_data', 'node_id')) !== id) {
      throw new PageClassRefusal(
        guest,
        'topology',
        `node_data[${id}] points to a pglist_data whose node_id is ${pgdat.readInt32LE(profile.offset('pglist_data', 'node_id'))}`,
      );
    }
    const zones: KernelZone[] = [];
    for (let index = 0; index < zoneCount; index++) {
      const at = profile.offset('pglist_data', 'node_zones') + index * zoneSize;
      const zone = pgdat.subarray(at, at + zoneSize);
      const namePointer = zone.readBigUInt64LE(profile.offset('zone', 'name'));
      let freeAreaPages = 0;
      for (let order = 0; order < (freeArea.count ?? 0); order++) {
        freeAreaPages += Number(zone.readBigUInt64LE(freeArea.offset + order * freeArea.elementSize! + nrFree)) * 2 ** order;
      }
      zones.push({
        node: id,
        index,
        name: namePointer === 0n ? `zone ${index}` : memory.cString(namePointer, 'zone name', 16),
        address: address + BigInt(at),
        startPfn: Number(zone.readBigUInt64LE(profile.offset('zone', 'zone_start_pfn'))),
        spannedPages: Number(zone.readBigUInt64LE(profile.offset('zone', 'spanned_pages'))),
        presentPages: Number(zone.readBigUInt64LE(profile.offset('zone', 'present_pages'))),
        perCpuPageset: zone.readBigUInt64LE(profile.offset('zone', 'per_cpu_pageset')),
        perCpuZonestats: zone.readBigUInt64LE(profile.offset('zone', 'per_cpu_zonestats')),
        freeAreaPages,
      });
    }
    nodes.push({ id, address, perCpuNodestats: pgdat.readBigUInt64LE(profile.offset('pglist_data', 'per_cpu_nodestats')), zones });
  }
  if (nodes.length === 0) throw new PageClassRefusal(guest, 'topology', 'node_data[] holds no node');
  return { cpus, nodes };
}

/** The kernel's own counters, by enumerator name (zone_stat_item and node_stat_item), CPU differentials folded in. */
export interface KernelCounters {
  zone: Record<string, number>;
  node: Record<string, number>;
  /** Σ over zones and CPUs of per_cpu_pages.count: pages on the per-CPU free lists (not in NR_FREE_PAGES). */
  perCpuFreePages: number;
  /** Σ over zones of the free_area counts (nr_free << order). */
  freeAreaPages: number;
}

function stateItems(profile: LayoutProfile, enumName: 'zone_stat_item' | 'node_stat_item', countName: string): [string, number][] {
  const items = Object.entries(profile.enumerators(enumName));
  const count = profile.enumValue(enumName, countName);
  // Aliases (NR_LRU_BASE = NR_INACTIVE_ANON) share a value: keep the first name of each value.
  const seen = new Set<number>();
  return items.filter(([name, value]) => value < count && name !== countName && !name.endsWith('_BASE') && !seen.has(value) && (seen.add(value), true));
}

export function readKernelCounters(memory: KernelMemory, profile: LayoutProfile, topology: KernelTopology): KernelCounters {
  const zoneItems = stateItems(profile, 'zone_stat_item', 'NR_VM_ZONE_STAT_ITEMS');
  const nodeItems = stateItems(profile, 'node_stat_item', 'NR_VM_NODE_STAT_ITEMS');
  const zoneCount = profile.enumValue('zone_stat_item', 'NR_VM_ZONE_STAT_ITEMS');
  const nodeCount = profile.enumValue('node_stat_item', 'NR_VM_NODE_STAT_ITEMS');
  const zoneGlobal = memory.symbolBytes('vm_zone_stat', zoneCount * 8);
  const nodeGlobal = memory.symbolBytes('vm_node_stat', nodeCount * 8);
  const zoneSums = Array.from({ length: zoneCount }, (_, i) => Number(zoneGlobal.readBigInt64LE(i * 8)));
  const nodeSums = Array.from({ length: nodeCount }, (_, i) => Number(nodeGlobal.readBigInt64LE(i * 8)));
  const zoneDiff = profile.offset('per_cpu_zonestat', 'vm_stat_diff');
  const nodeDiff = profile.offset('per_cpu_nodestat', 'vm_node_stat_diff');
  const pcpCount = profile.offset('per_cpu_pages', 'count');
  let perCpuFreePages = 0;
  let freeAreaPages = 0;
  for (const node of topology.nodes) {
    for (const cpu of topology.cpus) {
      if (node.perCpuNodestats === 0n) continue;
      const diffs = memory.read(node.perCpuNodestats + cpu.offset + BigInt(nodeDiff), nodeCount, `node ${node.id}'s per-CPU node stats`);
      for (let i = 0; i < nodeCount; i++) nodeSums[i]! += diffs.readInt8(i);
    }
    for (const zone of node.zones) {
      freeAreaPages += zone.freeAreaPages;
      for (const cpu of topology.cpus) {
        if (zone.perCpuZonestats !== 0n) {
          const diffs = memory.read(zone.perCpuZonestats + cpu.offset + BigInt(zoneDiff), zoneCount, `zone ${zone.name}'s per-CPU stats`);
          for (let i = 0; i < zoneCount; i++) zoneSums[i]! += diffs.readInt8(i);
        }
        if (zone.perCpuPageset !== 0n && zone.presentPages > 0) {
          perCpuFreePages += memory.read(zone.perCpuPageset + cpu.offset + BigInt(pcpCount), 4, `zone ${zone.name}'s per-CPU pages`).readInt32LE(0);
        }
      }
    }
  }
  return {
    zone: Object.fromEntries(zoneItems.map(([name, i]) => [name, zoneSums[i]!])),
    node: Object.fromEntries(nodeItems.map(([name, i]) => [name, nodeSums[i]!])),
    perCpuFreePages,
    freeAreaPages,
  };
}
