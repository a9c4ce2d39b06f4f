/** run.json from a recorded header and ending: nothing boots. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECORDED_COW_FAULT_NS, recordedHeader } from '../testing/recorded-samples.ts';
import { XEN_UNSHARE_COST_SLOT } from '../sharing/enforced-ledger.ts';
import { COW_DEFINITION } from '../sharing/ledger.ts';
import { CPU_METHOD } from './samples.ts';
import type { RunEnd } from './run.ts';
import { runRecord, writeRunRecord } from './run-record.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-run-json-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const read = () => JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8')) as Record<string, unknown>;

/** The keys of run.json in their order: readers (and people diffing two runs) rely on it. */
const KEYS = [
  'schema',
  'runId',
  'status',
  'owner',
  'startedAt',
  'endedAt',
  'scenario',
  'host',
  'harness',
  'argv',
  'backend',
  'sharingMode',
  'image',
  'kernel',
  'hasher',
  'cowMethod',
  'cowDefinition',
  'cpuMethod',
  'cowFaultCost',
  'repetitionsCompleted',
  'warnings',
  'notes',
  'files',
];

const ending: RunEnd = {
  status: 'completed',
  endedAt: '2026-11-27T13:45:00.000Z',
  backend: { name: 'qemu', version: 'QEMU 7.2.22', accelerator: 'tcg', acceleratorReason: 'no KVM', cpuModel: 'qemu64' },
  sharingModes: ['accounted'],
  cowMethods: ['content-reread: each tick …'],
  repetitions: [
    { guests: 2, memoryMiB: 64, repetition: 1, strategy: 'content', values: {} },
    { guests: 2, memoryMiB: 64, repetition: 1, strategy: 'semantic', values: {} },
  ],
  summary: [],
  overhead: undefined,
  warnings: ['a warning'],
  notes: ['semantic (64 MiB, rep 1): g0: kernel at physical 0x1000000'],
};

describe('run.json (runRecord, writeRunRecord)', () => {
  it('writes a running record when the run begins: nothing known of backend, ledgers or ending yet', () => {
    writeRunRecord(dir, runRecord(recordedHeader(dir), undefined));
    const record = read();
    expect(Object.keys(record)).toEqual(KEYS.filter((key) => key !== 'endedAt')); // undefined: left out
    expect(record).toMatchObject({
      schema: 2,
      runId: '20261127-134455-golden',
      status: 'running',
      owner: { pid: 4242 },
      backend: { name: 'qemu', note: 'not started yet' },
      sharingMode: 'not known yet (no ledger made)',
      cowMethod: 'not known yet (no ledger made)',
      cowDefinition: COW_DEFINITION,
      cpuMethod: CPU_METHOD,
      repetitionsCompleted: 0,
      warnings: [],
      notes: [],
      files: { samples: 'samples.csv', summary: 'summary.csv', logs: 'logs/' },
    });
    expect(record.image).toMatchObject({ name: 'fake', kernelRelease: '6.1.0-0-fake-amd64', dir: '/nonexistent/fake-image' });
    // bigints (kernel layout) as hex strings
    expect(record.kernel).toMatchObject({
      systemMap: '/nonexistent/fake-image/systemMap',
      layout: { text: '0xffffffff81000000' },
      version: { release: '6.1.0-0-fake-amd64' },
    });
  });

  it('seals the record at the end with what the run learnt', () => {
    writeRunRecord(dir, runRecord(recordedHeader(dir), undefined));
    writeRunRecord(dir, runRecord(recordedHeader(dir), ending));
    const record = read();
    expect(Object.keys(record)).toEqual(KEYS);
    expect(record).toMatchObject({
      status: 'completed',
      endedAt: '2026-11-27T13:45:00.000Z',
      backend: { version: 'QEMU 7.2.22', accelerator: 'tcg' },
      sharingMode: 'accounted (the backend does not merge pages; the ledger accounts what each strategy would share)',
      cowMethod: 'content-reread: each tick …',
      // One entry per strategy and repetition, as the runner has always counted.
      repetitionsCompleted: 2,
      warnings: ['a warning'],
      notes: ['semantic (64 MiB, rep 1): g0: kernel at physical 0x1000000'],
    });
    expect(fs.readdirSync(dir)).toEqual(['run.json']); // written atomically: no temporary left
  });

  it('records the per-fault CoW cost it was given (value, unit, method, when), or why there is none', () => {
    writeRunRecord(dir, runRecord(recordedHeader(dir), undefined));
    expect(read().cowFaultCost).toEqual({
      'linux-ksm-cow-break': { status: 'not measured', reason: expect.stringMatching(/^the runner was given no per-fault cost/) },
    });
    const measured = {
      status: 'measured' as const,
      value: RECORDED_COW_FAULT_NS,
      unit: 'ns CPU per CoW fault' as const,
      wallNsPerFault: 3900,
      method: 'KSM copy-on-write break, by the method of the kernel selftest …',
      measuredAt: '2026-12-01T23:49:28.334Z',
      host: { bootId: 'b', kernelRelease: '6.18.44' },
      programDigest: '0526da5a5993c0a6',
      trials: [],
      source: 'measured for this run',
    };
    const header = { ...recordedHeader(dir), cowFaultCosts: { 'linux-ksm-cow-break': measured, 'xen-unshare': XEN_UNSHARE_COST_SLOT } };
    writeRunRecord(dir, runRecord(header, ending));
    expect(read().cowFaultCost).toEqual({ 'linux-ksm-cow-break': measured, 'xen-unshare': { status: 'not measured', reason: XEN_UNSHARE_COST_SLOT.reason } });
  });

  it('names both modes when ledgers of both kinds were made', () => {
    writeRunRecord(dir, runRecord(recordedHeader(dir), undefined));
    writeRunRecord(dir, runRecord(recordedHeader(dir), { ...ending, status: 'failed', sharingModes: ['accounted', 'enforced'], cowMethods: ['a', 'b'] }));
    expect(read()).toMatchObject({ status: 'failed', sharingMode: expect.stringMatching(/^accounted .*; enforced /), cowMethod: 'a; b' });
  });
});
