/**
 * Recording and replay on in-memory stand-ins (harness/testing/): the page-file codec on crafted memory, the
 * checks that refuse a damaged recording, and record → replay through the real runner giving the same samples.
 * On real guests: record-replay.e2e.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../vocabulary.ts';
import { MemoryGuest } from '../testing/memory-guest.ts';
import { FAKE_SYSTEM_MAP, fakeBackendFactory, fakeImage, fakeKernel, type FakeBackendOptions, type FakeGuest } from '../testing/fake-backend.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { decodePageFile, encodePageFile, PAGE_CLASS } from './page-file.ts';
import { checkRecordable, parseTickChoice } from './recorder.ts';
import { replayRecording, runWithOutputs } from '../cli/run-outputs.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-recording-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A guest that remembers which pages were read, so that a test can tell no hole was touched. */
class WatchedGuest extends MemoryGuest {
  readonly read = new Set<number>();
  override pages(firstGfn: number, count: number): Buffer {
    for (let gfn = firstGfn; gfn < firstGfn + count; gfn++) this.read.add(gfn);
    return super.pages(firstGfn, count);
  }
}

describe('page files', () => {
  it('round-trips stored, zero and hole pages, and never reads a hole', async () => {
    const guest = new WatchedGuest('g0', 600);
    for (let gfn = 0; gfn < 300; gfn++) guest.fill(gfn, gfn); // more than one chunk of stored pages
    const residency = new Uint8Array(600).fill(1);
    for (let gfn = 400; gfn < 600; gfn++) residency[gfn] = 0; // holes; 300–399 resident zero pages
    const { file, counts } = await encodePageFile(guest, residency);
    expect(counts).toEqual({ stored: 300, zero: 100, holes: 200 });
    expect([...guest.read].some((gfn) => gfn >= 400)).toBe(false);
    const target = Buffer.alloc(600 * PAGE_SIZE, 0xee); // decode must overwrite everything
    const decoded = decodePageFile(file, 'test', { guest: 'g0', memoryPages: 600 }, target);
    expect(target.equals(guest.ram)).toBe(true);
    expect(decoded.classes[0]).toBe(PAGE_CLASS.stored);
    expect(decoded.classes[350]).toBe(PAGE_CLASS.zero);
    expect(decoded.classes[500]).toBe(PAGE_CLASS.hole);
    expect(file.length).toBeLessThan(300 * PAGE_SIZE); // compressed
  });

  it('reads every page where residency is unknown (Xen backs all of them)', async () => {
    const guest = new WatchedGuest('g1', 8);
    guest.fill(3, 9);
    const { counts } = await encodePageFile(guest, undefined);
    expect(counts).toEqual({ stored: 1, zero: 7, holes: 0 });
    expect(guest.read.size).toBe(8);
  });

  it('refuses a truncated file, a wrong magic, trailing bytes and the wrong guest, naming the file', async () => {
    const guest = new MemoryGuest('g0', 64);
    for (let gfn = 0; gfn < 64; gfn++) guest.fill(gfn, gfn * 3);
    const { file } = await encodePageFile(guest, undefined);
    const target = Buffer.alloc(64 * PAGE_SIZE);
    const expected = { guest: 'g0', memoryPages: 64 };
    expect(() => decodePageFile(file.subarray(0, file.length - 10), 'a.xmp', expected, target)).toThrow(/a\.xmp is corrupt: .*truncated/);
    const magic = Buffer.from(file);
    magic[0] = 0x41;
    expect(() => decodePageFile(magic, 'b.xmp', expected, target)).toThrow(/b\.xmp is corrupt: it does not start with XMEPAGES/);
    expect(() => decodePageFile(Buffer.concat([file, Buffer.from([1])]), 'c.xmp', expected, target)).toThrow(/bytes after its last chunk/);
    expect(() => decodePageFile(file, 'd.xmp', { guest: 'g1', memoryPages: 64 }, target)).toThrow(/holds guest g0/);
  });
});

describe('--record-ticks and what can be recorded', () => {
  it('parses "all" and tick lists, and refuses anything else', () => {
    expect(parseTickChoice('all')).toBe('all');
    expect(parseTickChoice('6, 0,6,12')).toEqual([0, 6, 12]);
    expect(() => parseTickChoice('0,x')).toThrow(/--record-ticks '0,x' must be "all" or tick numbers/);
  });

  it('refuses scenarios a recording cannot hold faithfully', () => {
    const base = { name: 'r', guests: 2, memoryMiB: [64], durationS: 1, tickS: 1, strategies: ['content'] };
    expect(() => checkRecordable(parseScenario({ ...base, pauseDuringScan: false }))).toThrow(/pauseDuringScan is false/);
    expect(() => checkRecordable(parseScenario({ ...base, strategies: ['none', 'content'], strategyGuests: 'apart' }))).toThrow(/strategyGuests "apart"/);
  });
});

/** Pages 0–3 identical in every guest, the rest each guest's own; g1 writes shared page 2 after tick 0, g0 page 5 after tick 1. */
const fake: FakeBackendOptions = {
  memoryPages: 16,
  boot: (guest: FakeGuest, index: number) => {
    for (let gfn = 0; gfn < 12; gfn++) guest.fill(gfn, gfn < 4 ? gfn + 1 : 100 + index * 20 + gfn);
  },
  workload: (guest: FakeGuest, resumes: number) => {
    if (guest.id === 'g1' && resumes === 1) guest.fill(2, 222);
    if (guest.id === 'g0' && resumes === 2) guest.fill(5, 100 + 20 + 5); // now equal to g1's page 5
  },
};

const systemMapFile = path.join(root, 'System.map');
fs.writeFileSync(systemMapFile, FAKE_SYSTEM_MAP);
const image = { ...fakeImage(), path: (file: string) => (file === 'systemMap' ? systemMapFile : `/nonexistent/${file}`) };

async function recordFakeRun(ticks: 'all' | number[] = 'all') {
  const scenario = parseScenario({
    name: 'fake',
    guests: 2,
    memoryMiB: [64],
    repetitions: 2,
    durationS: 0.03,
    tickS: 0.01,
    strategies: ['content', 'semantic'],
  });
  const results = fs.mkdtempSync(path.join(root, 'run-'));
  const outcome = await runWithOutputs({
    scenario,
    resultsRoot: results,
    backendFactory: fakeBackendFactory(fake),
    image: { image, kernel: fakeKernel() },
    stopRequested: () => false,
    record: { ticks },
  });
  return outcome;
}

type Row = Record<string, string>;
const samples = (dir: string) => parse(fs.readFileSync(path.join(dir, 'samples.csv')), { columns: true }) as Row[];
const scored = (rows: Row[]) =>
  rows.filter((r) => r.guest === 'all').map((r) => [r.repetition, r.tick, r.strategy, r.shared_pages, r.frames_saved, r.cow_faults_total, r.status].join(' '));

describe('record → replay on stand-in guests, through the runner', () => {
  it('replays every recorded tick to the same shared pages, frames saved, CoW faults and refusals', async () => {
    const live = await recordFakeRun();
    expect(live.status).toBe('completed');
    const replay = await replayRecording({ recording: live.dir, resultsRoot: fs.mkdtempSync(path.join(root, 'replay-')), stopRequested: () => false });
    expect(replay.status).toBe('completed');
    const liveRows = scored(samples(live.dir));
    expect(liveRows).toHaveLength(2 * 4 * 2);
    const lastContent = samples(live.dir)
      .filter((r) => r.guest === 'all' && r.strategy === 'content')
      .at(-1)!;
    expect(Number(lastContent.cow_faults_total)).toBe(1); // g1's write to shared page 2, seen live
    const content = samples(live.dir).filter((r) => r.guest === 'all' && r.strategy === 'content' && r.repetition === '1');
    expect(Number(content[2]!.shared_pages) - Number(content[1]!.shared_pages)).toBe(2); // g0's page 5 now equals g1's
    expect(scored(samples(replay.dir))).toEqual(liveRows);
    const run = JSON.parse(fs.readFileSync(path.join(replay.dir, 'run.json'), 'utf8')) as { backend: { name: string; version: string } };
    expect(run.backend.name).toBe('replay');
    expect(run.backend.version).toContain(live.runId);
  });

  it('keeps only the chosen ticks, and replays those', async () => {
    const live = await recordFakeRun([0, 2]);
    const replay = await replayRecording({
      recording: path.join(live.dir, 'recording'),
      strategies: ['content'],
      resultsRoot: fs.mkdtempSync(path.join(root, 'replay-')),
      stopRequested: () => false,
    });
    const rows = samples(replay.dir).filter((r) => r.guest === 'all');
    expect(rows.map((r) => `${r.repetition}:${r.tick}:${r.strategy}`)).toEqual(['1:0:content', '1:2:content', '2:0:content', '2:2:content']);
    const liveContent = samples(live.dir).filter((r) => r.guest === 'all' && r.strategy === 'content' && r.tick !== '1' && r.tick !== '3');
    expect(rows.map((r) => r.shared_pages)).toEqual(liveContent.map((r) => r.shared_pages));
  });

  it('refuses a damaged recording before scoring anything: truncated, altered, a bad manifest field, none at all', async () => {
    const live = await recordFakeRun();
    const dir = path.join(live.dir, 'recording');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'recording.json'), 'utf8')) as {
      segments: { ticks: { tS?: number; guests: { file: string }[] }[] }[];
    };
    const pageFile = path.join(dir, manifest.segments[1]!.ticks[2]!.guests[1]!.file);
    const original = fs.readFileSync(pageFile);
    const replayTo = () => replayRecording({ recording: dir, resultsRoot: path.join(root, 'refused'), stopRequested: () => false });

    fs.writeFileSync(pageFile, original.subarray(0, original.length - 7));
    await expect(replayTo()).rejects.toThrow(/is damaged: m64-r2\/t0002-g1\.xmp has \d+ bytes, the manifest says \d+ \(truncated\)/);
    const altered = Buffer.from(original);
    altered.writeUInt8(altered.readUInt8(altered.length - 3) ^ 0xff, altered.length - 3);
    fs.writeFileSync(pageFile, altered);
    await expect(replayTo()).rejects.toThrow(/t0002-g1\.xmp does not have the sha256 the manifest lists/);
    fs.writeFileSync(pageFile, original);
    delete manifest.segments[0]!.ticks[1]!.tS;
    fs.writeFileSync(path.join(dir, 'recording.json'), JSON.stringify(manifest));
    await expect(replayTo()).rejects.toThrow(/field 'segments\[0\]\.ticks\[1\]\.tS' must be a finite number/);
    fs.writeFileSync(path.join(dir, 'recording.json'), '{"format": "xme-rec');
    await expect(replayTo()).rejects.toThrow(/recording\.json is not readable JSON/);
    await expect(replayRecording({ recording: root, resultsRoot: root })).rejects.toThrow(
      /no recording at .*: neither .*recording\.json nor .*recording\/recording\.json exists/,
    );
    expect(fs.existsSync(path.join(root, 'refused'))).toBe(false); // nothing was scored, no results folder made
  });

  it('replays what an interrupted recording holds, and refuses strategies of the live host', async () => {
    const live = await recordFakeRun();
    const dir = path.join(live.dir, 'recording');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'recording.json'), 'utf8')) as { status: string; segments: unknown[] };
    manifest.status = 'recording'; // as a harness killed with SIGKILL leaves it: every listed tick is complete
    manifest.segments = manifest.segments.slice(0, 1);
    fs.writeFileSync(path.join(dir, 'recording.json'), JSON.stringify(manifest));
    const said: string[] = [];
    const replay = await replayRecording({
      recording: dir,
      resultsRoot: fs.mkdtempSync(path.join(root, 'replay-')),
      stopRequested: () => false,
      onProgress: (line) => said.push(line),
    });
    expect(said.join('\n')).toMatch(/ended 'recording'; its 4 complete recorded tick\(s\) are replayed/);
    expect(new Set(samples(replay.dir).map((r) => r.repetition))).toEqual(new Set(['1']));
    await expect(replayRecording({ recording: dir, strategies: ['ksm'], resultsRoot: root })).rejects.toThrow(/strategy ksm cannot score a recording/);
  });
});
