/**
 * Shards run on in-memory guests (fake-backend.ts: whole runs in milliseconds), then merged: what merge
 * refuses, and that a merged folder says what an unsharded run of the same suite says.
 */
import { runWithOutputs } from '../cli/run-outputs.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeBackendFactory, fakeImage, fakeKernel, type FakeBackendOptions, type FakeGuest } from '../testing/fake-backend.ts';
import { parseSuite } from './suite.ts';
import { expandSuite, type ExpandedSuite } from './cells.ts';
import { runShard } from './run-shard.ts';
import { mergeShards, mergedRunDirs } from './merge.ts';
import { cellsOfShard } from './shard.ts';

type Row = Record<string, string>;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-merge-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const readCsv = (file: string) => parse(fs.readFileSync(file), { columns: true }) as Row[];
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const writeJson = (file: string, value: unknown) => fs.writeFileSync(file, JSON.stringify(value));

/** Pages 0–3 identical in every guest, the rest each guest's own; g1 writes shared page 2 after tick 0. */
const guests: FakeBackendOptions = {
  memoryPages: 8,
  boot: (guest: FakeGuest, index: number) => {
    for (let gfn = 0; gfn < 8; gfn++) guest.fill(gfn, gfn < 4 ? gfn + 1 : 100 + index * 10 + gfn);
  },
  workload: (guest: FakeGuest, resumes: number) => {
    if (guest.id === 'g1' && resumes === 1) guest.fill(2, 222);
  },
};

fs.writeFileSync(
  path.join(root, 'fake.json'),
  JSON.stringify({ name: 'fake', guests: 2, memoryMiB: [64, 128], repetitions: 2, durationS: 0.02, tickS: 0.01, strategies: ['content', 'semantic'] }),
);
const suiteOf = (name: string, quick = false): ExpandedSuite =>
  expandSuite(
    parseSuite(
      { name, entries: [{ scenario: 'fake.json' }, { scenario: 'fake.json', kaslr: true, memoryMiB: [64], repetitions: 1 }], quick: { repetitions: 1 } },
      name,
      root,
    ),
    { quick },
  );
const suite = suiteOf('s'); // 4 + 1 cells

const run = (expanded: ExpandedSuite, index: number, count: number, resultsRoot: string) =>
  runShard({
    suite: expanded,
    shard: { index, count },
    resultsRoot,
    backendFactory: fakeBackendFactory(guests),
    image: { image: fakeImage(), kernel: fakeKernel() },
    stopRequested: () => false,
    runCell: runWithOutputs,
  });

let shards: string[] = [];
let whole: string;
let n = 0;
const out = () => path.join(root, `out-${++n}`);
/** A copy of a shard folder to tamper with. */
const copy = (dir: string) => {
  const to = path.join(root, `copy-${++n}`, path.basename(dir));
  fs.cpSync(dir, to, { recursive: true });
  return to;
};

beforeAll(async () => {
  shards = [(await run(suite, 0, 2, path.join(root, 'sharded'))).dir, (await run(suite, 1, 2, path.join(root, 'sharded'))).dir];
  whole = (await run(suite, 0, 1, path.join(root, 'whole'))).dir;
});

describe('suite shards on fake guests', () => {
  it('write a shard folder: shard.json and one results folder per cell of the shard', () => {
    const record = readJson(path.join(shards[1]!, 'shard.json'));
    expect(record).toMatchObject({ suite: 's', status: 'completed', shard: { index: 1, count: 2 } });
    const mine = cellsOfShard(suite.cells, { index: 1, count: 2 }).map((c) => c.id);
    expect((record.cells as { id: string }[]).map((c) => c.id)).toEqual(mine);
    for (const id of mine) {
      expect(readJson(path.join(shards[1]!, id, 'run.json'))).toMatchObject({ runId: id, status: 'completed' });
      const samples = readCsv(path.join(shards[1]!, id, 'samples.csv'));
      // the cell's repetition number, as in an unsharded run (not 1 for every cell)
      expect(new Set(samples.map((r) => r.repetition))).toEqual(new Set([id.slice(-1)]));
    }
  });

  it('a second run of a shard keeps its completed cells, unless another xme commit made them', async () => {
    const again = await run(suite, 1, 2, path.join(root, 'sharded'));
    expect(again.record.cells.every((c) => c.status === 'skipped (completed before)')).toBe(true);
    const other = (await run(suite, 1, 2, path.join(root, 'resumed'))).dir;
    const cell = fs.readdirSync(other).find((f) => f.startsWith('fake.'))!;
    const runJson = readJson(path.join(other, cell, 'run.json')) as { harness: { gitCommit: string } };
    writeJson(path.join(other, cell, 'run.json'), { ...runJson, harness: { ...runJson.harness, gitCommit: 'f00d' } });
    const redone = await run(suite, 1, 2, path.join(root, 'resumed'));
    expect(redone.record.cells.find((c) => c.id === cell)?.status).toBe('completed');
    expect(redone.record.cells.filter((c) => c.status === 'skipped (completed before)')).toHaveLength(redone.record.cells.length - 1);
  });

  it('a shard stopped before its cells ran says so, and merge counts its cells missing', async () => {
    const stopped = await runShard({
      suite,
      shard: { index: 0, count: 2 },
      resultsRoot: path.join(root, 'stopped'),
      backendFactory: fakeBackendFactory(guests),
      image: { image: fakeImage(), kernel: fakeKernel() },
      stopRequested: () => true,
      runCell: runWithOutputs,
    });
    expect(stopped.record).toMatchObject({ status: 'interrupted', cells: [] });
    expect(readJson(path.join(stopped.dir, 'shard.json')).status).toBe('interrupted');
    expect(() => mergeShards([stopped.dir, shards[1]!], { out: out() })).toThrow(/3 of 5 cells missing/);
  });
});

describe('xme merge', () => {
  it('merges shards into what the unsharded run gives: same cells, summaries over all repetitions; xme report reads it', async () => {
    const merged = mergeShards(shards, { out: out() });
    const single = mergeShards([whole], { out: out() });
    expect(merged.missing).toEqual([]);
    expect(merged.cells).toBe(suite.cells.length);
    expect(merged.variantDirs.map((d) => path.basename(d))).toEqual(['fake.qemu.kaslr0', 'fake.qemu.kaslr1']);
    const suiteJson = readJson(path.join(merged.out, 'suite.json'));
    expect((suiteJson.cells as { id: string }[]).map((c) => c.id).sort()).toEqual(suite.cells.map((c) => c.id).sort());
    expect((suiteJson.shards as unknown[]).length).toBe(2);

    for (const [i, dir] of merged.variantDirs.entries()) {
      const key = (r: Row) => `${r.memory_mib}/${r.strategy}/${r.metric}/${r.n}`;
      const rows = readCsv(path.join(dir, 'summary.csv'));
      const wholeRows = readCsv(path.join(single.variantDirs[i]!, 'summary.csv'));
      expect(rows.map(key)).toEqual(wholeRows.map(key));
      // deterministic figures agree exactly (CPU times do not)
      const pages = (rs: Row[]) => rs.filter((r) => r.metric === 'shared_pages' || r.metric === 'cow_faults').map((r) => `${key(r)}=${r.mean}`);
      expect(pages(rows)).toEqual(pages(wholeRows));
    }
    const kaslr0 = merged.variantDirs[0]!;
    expect(readCsv(path.join(kaslr0, 'summary.csv')).find((r) => r.metric === 'shared_pages' && r.memory_mib === '64')?.n).toBe('2');
    const samples = readCsv(path.join(kaslr0, 'samples.csv'));
    expect(new Set(samples.map((r) => `${r.memory_mib}/${r.repetition}`))).toEqual(new Set(['64/1', '64/2', '128/1', '128/2']));
    const runJson = readJson(path.join(kaslr0, 'run.json'));
    expect(runJson).toMatchObject({
      status: 'completed',
      runId: 'fake.qemu.kaslr0',
      repetitionsCompleted: 8,
      scenario: { memoryMiB: [64, 128], repetitions: 2 },
    });
    const mergedInfo = runJson.merged as { shards: { host: { hostname: string }; harness: { gitCommit: string } }[]; cells: unknown[] };
    expect(mergedInfo.shards).toHaveLength(2);
    expect(mergedInfo.shards[0]!.host.hostname).toBe(os.hostname());
    expect(mergedInfo.cells).toHaveLength(4);

    // xme report on the merged folder: each variant is a run of the report.
    expect(mergedRunDirs(merged.out)).toEqual(merged.variantDirs);
    const { reportFolders } = await import('../report/report.ts');
    const report = reportFolders(mergedRunDirs(merged.out)!, merged.out, { generatedAt: '2026-11-27T00:00:00Z' });
    const html = fs.readFileSync(report.html, 'utf8');
    expect(html).toContain('fake.qemu.kaslr0');
    expect(html).toContain('fake.qemu.kaslr1');
    expect(report.figures.length).toBeGreaterThan(0);
  });

  it('refuses shards of different suites, and the quick with the full one', async () => {
    const other = (await run(suiteOf('t'), 1, 2, path.join(root, 'other'))).dir;
    expect(() => mergeShards([shards[0]!, other], { out: out() })).toThrow(/shard folders of different suites: .* is suite s .*, .* is suite t/);
    const quick = (await run(suiteOf('s', true), 1, 2, path.join(root, 'quick'))).dir;
    expect(() => mergeShards([shards[0]!, quick], { out: out() })).toThrow(
      /shard folders of different suites: .* is suite s \(digest .*, .* is suite s --quick/,
    );
  });

  it('refuses shards of different xme versions', () => {
    const tampered = copy(shards[1]!);
    const record = readJson(path.join(tampered, 'shard.json'));
    writeJson(path.join(tampered, 'shard.json'), { ...record, harness: { ...(record.harness as object), gitCommit: 'f00d' } });
    expect(() => mergeShards([shards[0]!, tampered], { out: out() })).toThrow(/different xme versions: .* ran xme 0\.1\.0 \(.*\), .* ran xme 0\.1\.0 \(f00d/);
  });

  it('refuses cells that booted different image builds', () => {
    const tampered = copy(shards[1]!);
    const cell = fs.readdirSync(tampered).find((f) => f.startsWith('fake.'))!;
    const runJson = readJson(path.join(tampered, cell, 'run.json')) as { image: { files: Record<string, { sha256: string }> } };
    runJson.image.files.vmlinuz!.sha256 = 'a'.repeat(64);
    writeJson(path.join(tampered, cell, 'run.json'), runJson);
    expect(() => mergeShards([shards[0]!, tampered], { out: out() })).toThrow(/cells booted different builds of image 'fake'/);
  });

  it('refuses a cell present twice', () => {
    expect(() => mergeShards([shards[0]!, shards[1]!, shards[0]!], { out: out() })).toThrow(/shard folder .*s\.shard-0-of-2 is given twice/);
    expect(() => mergeShards([shards[0]!, copy(whole)], { out: out() })).toThrow(
      /cell fake\.qemu\.m128\.kaslr0\.r1 is in two shard folders: .*s\.shard-0-of-2\/fake\.qemu\.m128\.kaslr0\.r1 and .*s\.shard-0-of-1\/fake\.qemu\.m128\.kaslr0\.r1/,
    );
  });

  it('refuses missing cells, naming them; --allow-missing merges the rest and lists them', () => {
    const absent = cellsOfShard(suite.cells, { index: 1, count: 2 }).map((c) => c.id);
    expect(() => mergeShards([shards[0]!], { out: out() })).toThrow(
      new RegExp(`${absent.length} of 5 cells missing: ${absent.join(', ').replace(/\./g, '\\.')}`),
    );
    const merged = mergeShards([shards[0]!], { out: out(), allowMissing: true });
    expect(merged.missing).toEqual(absent);
    expect(readJson(path.join(merged.out, 'suite.json')).missing).toEqual(absent);
    const warnings = merged.variantDirs.flatMap((d) => readJson(path.join(d, 'run.json')).warnings as string[]);
    expect(warnings.some((w) => w.includes('missing cells (--allow-missing)'))).toBe(true);
  });

  it('counts a failed cell as missing, and never writes into a folder that has something in it', () => {
    const tampered = copy(shards[0]!);
    const cell = fs.readdirSync(tampered).find((f) => f.startsWith('fake.'))!;
    writeJson(path.join(tampered, cell, 'run.json'), { ...readJson(path.join(tampered, cell, 'run.json')), status: 'failed' });
    expect(() => mergeShards([tampered, shards[1]!], { out: out() })).toThrow(
      new RegExp(`1 of 5 cells missing: ${cell.replace(/\./g, '\\.')} \\(${cell.replace(/\./g, '\\.')} failed\\)`),
    );
    const full = out();
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'x'), '');
    expect(() => mergeShards(shards, { out: full })).toThrow(/exists and is not empty/);
    expect(() => mergeShards([path.join(root, 'fake.json')], { out: out() })).toThrow(/shard\.json is missing/);
  });
});
