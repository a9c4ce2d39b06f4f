/** Suite files: validation that names the field, expansion into cells with stable ids and seeds, shards. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XmeError } from '../util/errors.ts';
import { loadSuite, parseSuite } from './suite.ts';
import { cellSeed, expandSuite } from './cells.ts';
import { cellsOfShard, parseShard, shardOf } from './shard.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-suite-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.writeFileSync(
  path.join(dir, 'tiny.json'),
  JSON.stringify({ name: 'tiny', guests: 2, memoryMiB: [64, 128], repetitions: 2, durationS: 1, tickS: 0.5, strategies: ['content', 'semantic'] }),
);

const suite = (json: Record<string, unknown>) => parseSuite({ name: 's', entries: [{ scenario: 'tiny.json' }], ...json }, 's', dir);
const refusal = (json: Record<string, unknown>) => {
  try {
    expandSuite(suite(json));
  } catch (error) {
    expect(error).toBeInstanceOf(XmeError);
    return (error as Error).message;
  }
  throw new Error('accepted');
};

describe('suite validation', () => {
  it('names the field at fault', () => {
    expect(refusal({ bogus: 1 })).toMatch(/suite s: field 'bogus' is not a suite field/);
    expect(refusal({ entries: [] })).toMatch(/field 'entries' must be a non-empty list/);
    expect(refusal({ entries: [{ scenario: 'tiny.json' }, { scenario: 'tiny.json', memoryMiB: [64, 9999] }] })).toMatch(
      /field 'entries\[1\]\.memoryMiB\[1\]' must be an integer from 64 to 3072, got 9999/,
    );
    expect(refusal({ entries: [{ scenario: 'tiny.json', kaslr: 'yes' }] })).toMatch(/field 'entries\[0\]\.kaslr' must be true or false/);
    expect(refusal({ entries: [{ scenario: 'tiny.json', colour: 'red' }] })).toMatch(/field 'entries\[0\]\.colour' is not an entry field/);
    expect(refusal({ entries: [{ scenario: 'tiny.json', label: 'a b' }] })).toMatch(/field 'entries\[0\]\.label'/);
    expect(refusal({ entries: [{ scenario: 'tiny.json', backend: 'vmware' }] })).toMatch(/field 'entries\[0\]\.backend' must be one of qemu, xen/);
    expect(refusal({ quick: { entries: ['nope'] } })).toMatch(/field 'quick\.entries\[0\]' must be the label .*tiny/);
    expect(refusal({ quick: { repetitions: 0 } })).toMatch(/field 'quick\.repetitions' must be an integer from 1/);
    expect(() => parseSuite({ name: 'bad name!', entries: [] }, 'file')).toThrow(/suite file: field 'name'/);
  });

  it('names the entry when its scenario refuses the overrides, and refuses cells given twice', () => {
    expect(refusal({ entries: [{ scenario: 'no-such-scenario' }] })).toMatch(/entries\[0\] \(scenario no-such-scenario\): no scenario '.*no-such-scenario'/);
    expect(refusal({ entries: [{ scenario: 'tiny.json', tickS: 5 }] })).toMatch(/entries\[0\] \(scenario tiny\.json\): scenario tiny: field 'tickS'/);
    expect(refusal({ entries: [{ scenario: 'tiny.json' }, { scenario: 'tiny.json', durationS: 2 }] })).toMatch(
      /field 'entries\[1\]' gives cell tiny\.qemu\.m64\.kaslr0\.r1, already given by entries\[0\]/,
    );
    // A label tells them apart.
    expect(expandSuite(suite({ entries: [{ scenario: 'tiny.json' }, { scenario: 'tiny.json', durationS: 2, label: 'long' }] })).cells).toHaveLength(8);
    expect(() => expandSuite(suite({}), { quick: true })).toThrow(/suite s has no quick version/);
  });

  it('loads the shipped thesis suite, full and quick, with no KSM in the quick one', () => {
    const thesis = loadSuite('thesis');
    const full = expandSuite(thesis);
    const quick = expandSuite(thesis, { quick: true });
    expect(full.variants.map((v) => v.id)).toContain('thesis-kernel-code.qemu.kaslr1');
    expect(full.variants.map((v) => v.id)).toContain('thesis-kernel-code-cpu-models.qemu.kaslr0'); // figure 4: kernel code across CPU models
    expect(full.variants.some((v) => v.scenario.strategies.some((s) => s.name === 'ksm'))).toBe(true);
    expect(quick.variants.some((v) => v.scenario.strategies.some((s) => s.name === 'ksm'))).toBe(false);
    expect(quick.cells.length).toBeLessThan(full.cells.length);
    expect(quick.variants.every((v) => v.scenario.durationS <= 10 && v.scenario.memoryMiB.every((m) => m === 128))).toBe(true);
    expect(quick.digest).not.toBe(full.digest);
  });
});

describe('cells', () => {
  const expanded = expandSuite(suite({ entries: [{ scenario: 'tiny.json' }, { scenario: 'tiny.json', kaslr: true, memoryMiB: [128], repetitions: 3 }] }));

  it('expand entry × memory × repetition with ids made of what they measure', () => {
    expect(expanded.cells.map((c) => c.id)).toEqual([
      'tiny.qemu.m64.kaslr0.r1',
      'tiny.qemu.m64.kaslr0.r2',
      'tiny.qemu.m128.kaslr0.r1',
      'tiny.qemu.m128.kaslr0.r2',
      'tiny.qemu.m128.kaslr1.r1',
      'tiny.qemu.m128.kaslr1.r2',
      'tiny.qemu.m128.kaslr1.r3',
    ]);
    expect(expanded.cells.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(expanded.variants.map((v) => v.id)).toEqual(['tiny.qemu.kaslr0', 'tiny.qemu.kaslr1']);
    expect(expanded.variants[1]!.scenario).toMatchObject({ kaslr: true, memoryMiB: [128], repetitions: 3 });
  });

  it('have seeds from the suite name and cell id only, and a digest that changes with any cell', () => {
    const again = expandSuite(suite({ entries: [{ scenario: 'tiny.json' }, { scenario: 'tiny.json', kaslr: true, memoryMiB: [128], repetitions: 3 }] }));
    expect(again.cells).toEqual(expanded.cells);
    expect(again.digest).toBe(expanded.digest);
    expect(expanded.cells[0]!.seed).toBe(cellSeed('s', 'tiny.qemu.m64.kaslr0.r1'));
    expect(new Set(expanded.cells.map((c) => c.seed)).size).toBe(expanded.cells.length);
    expect(cellSeed('other', 'tiny.qemu.m64.kaslr0.r1')).not.toBe(expanded.cells[0]!.seed);
    const longer = expandSuite(suite({ entries: [{ scenario: 'tiny.json', durationS: 2 }] }));
    const shorter = expandSuite(suite({ entries: [{ scenario: 'tiny.json' }] }));
    expect(longer.cells.map((c) => c.id)).toEqual(shorter.cells.map((c) => c.id));
    expect(longer.digest).not.toBe(shorter.digest); // same cells, other scenario: another experiment
  });
});

describe('shards', () => {
  const cells = Array.from({ length: 13 }, (_, index) => ({ index, id: `c${index}` }));

  it('put every cell in exactly one shard, for N = 1…5', () => {
    for (let count = 1; count <= 5; count++) {
      const shards = Array.from({ length: count }, (_, index) => cellsOfShard(cells, { index, count }));
      const all = shards.flat().map((c) => c.id);
      expect(all.sort()).toEqual(cells.map((c) => c.id).sort());
      expect(new Set(all).size).toBe(cells.length);
      for (const [index, shard] of shards.entries()) for (const cell of shard) expect(shardOf(cell, count)).toBe(index);
      // balanced: sizes differ by at most one
      expect(Math.max(...shards.map((s) => s.length)) - Math.min(...shards.map((s) => s.length))).toBeLessThanOrEqual(1);
    }
  });

  it('parse --shard i/N and refuse the rest', () => {
    expect(parseShard('1/3')).toEqual({ index: 1, count: 3 });
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(() => parseShard('3/3')).toThrow(/index must be from 0 to N − 1/);
    expect(() => parseShard('0/0')).toThrow(/index must be from 0 to N − 1/);
    expect(() => parseShard('1-3')).toThrow(/not of the form i\/N/);
  });

  it('read a Slurm array task, and say clearly when there is none', () => {
    expect(parseShard('slurm', { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '1' })).toEqual({
      index: 1,
      count: 2,
    });
    expect(parseShard('slurm', { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' })).toEqual({
      index: 3,
      count: 4,
    });
    expect(() => parseShard('slurm', {})).toThrow(/SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set/);
    expect(() => parseShard('slurm', { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '2', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '2' })).toThrow(
      /not one of a contiguous array/,
    );
  });
});

describe('xme suite and xme merge on the command line', () => {
  const parse = async (argv: string[]) => (await import('../cli/cli.ts')).createCli(argv).parseAsync();

  it('refuses a bad shard, a missing Slurm array, and a merge without --out, before anything runs', async () => {
    const saved = { id: process.env.SLURM_ARRAY_TASK_ID, count: process.env.SLURM_ARRAY_TASK_COUNT };
    delete process.env.SLURM_ARRAY_TASK_ID;
    delete process.env.SLURM_ARRAY_TASK_COUNT;
    try {
      await expect(parse(['suite', 'run', 'thesis', '--quick', '--shard', '2/2'])).rejects.toThrow(/--shard 2\/2: the index must be from 0 to N − 1/);
      await expect(parse(['suite', 'run', 'thesis', '--quick', '--shard', 'slurm'])).rejects.toThrow(
        /SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set/,
      );
    } finally {
      if (saved.id !== undefined) process.env.SLURM_ARRAY_TASK_ID = saved.id;
      if (saved.count !== undefined) process.env.SLURM_ARRAY_TASK_COUNT = saved.count;
    }
    await expect(parse(['merge', 'a', 'b'])).rejects.toThrow(/Missing required argument: out/);
    await expect(parse(['suite', 'list', 'no-such-suite'])).rejects.toThrow(/no suite 'no-such-suite'/);
  });
});
