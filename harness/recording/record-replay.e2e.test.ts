/**
 * Record once, replay anywhere, on real guests: `xme run --record` of 2 real guests writing memory (memchurn,
 * one seed: content sharing and CoW faults change from tick to tick), then `xme replay` with no VM gives the
 * same shared pages, frames saved and CoW faults at every tick for semantic, semantic+rodata and content; a
 * truncated recording is refused by the command line with the file named, and nothing is scored.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunOutcome } from '../experiment/runner.ts';
import { loadScenario, parseScenario } from '../scenario/scenario.ts';
import { defaultImage } from '../testing/e2e.ts';
import { projectRoot } from '../util/paths.ts';
import { replayRecording, runWithOutputs } from '../cli/run-outputs.ts';
import type { RecordingManifest } from './format.ts';

type Row = Record<string, string>;
const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-record-test-'));
afterAll(() => fs.rmSync(resultsRoot, { recursive: true, force: true }));
const samples = (dir: string) => parse(fs.readFileSync(path.join(dir, 'samples.csv')), { columns: true }) as Row[];
const scored = (rows: Row[]) =>
  rows
    .filter((r) => r.guest === 'all')
    .map(
      (r) =>
        `${r.tick} ${r.strategy}: shared ${r.shared_pages}, saved ${r.frames_saved}, host saved ${r.host_frames_saved}, CoW ${r.cow_faults_total}, ${r.status}`,
    );

describe('xme run --record, then xme replay', () => {
  let live: RunOutcome;
  let manifest: RecordingManifest;

  beforeAll(async () => {
    await defaultImage();
    const scenario = parseScenario({
      ...loadScenario('cow-faults'),
      guests: 2,
      memoryMiB: [128],
      warmupS: 2,
      durationS: 15,
      tickS: 5,
      strategies: ['semantic', { name: 'semantic', label: 'semantic+rodata', options: { rodata: true } }, 'content'],
    });
    live = await runWithOutputs({ scenario, resultsRoot, record: { ticks: 'all' } });
    manifest = JSON.parse(fs.readFileSync(path.join(live.dir, 'recording', 'recording.json'), 'utf8')) as RecordingManifest;
  }, 240_000);

  it('records every tick of every guest, sparse and compressed, with the kernel placement the live run found', () => {
    expect(live.status).toBe('completed');
    expect(manifest.status).toBe('completed');
    const [segment] = manifest.segments;
    expect(segment!.ticks.map((t) => t.tick)).toEqual([0, 1, 2, 3]);
    for (const guest of segment!.guests) {
      expect(guest.placements.map((p) => p.route).sort()).toEqual(['hypervisor', 'memory']); // both routes, and they agree
      expect(new Set(guest.placements.map((p) => `${p.physicalBase}/${p.virtualOffset}`)).size).toBe(1);
    }
    const bytes = segment!.ticks.flatMap((t) => t.guests.map((g) => g.bytes)).reduce((a, b) => a + b, 0);
    const guestBytes = segment!.ticks.length * 2 * 128 * 2 ** 20;
    process.stdout.write(
      `RECORDING-SIZE ${(bytes / 2 ** 20).toFixed(1)} MiB for ${(guestBytes / 2 ** 30).toFixed(2)} GiB of guest memory: ${((bytes / guestBytes) * 1024).toFixed(1)} MiB per GiB; record wall per tick ${segment!.ticks.map((t) => t.recordWallMs).join(', ')} ms\n`,
    );
    expect(bytes).toBeLessThan(guestBytes / 2); // holes and zero pages are not stored, the rest is compressed
    expect(segment!.ticks[0]!.guests[0]!.counts.holes).toBeGreaterThan(0);
  });

  it('replays to the same figures at every tick, with no VM', async () => {
    const replay = await replayRecording({ recording: live.dir, resultsRoot });
    expect(replay.status).toBe('completed');
    const liveRows = scored(samples(live.dir));
    expect(liveRows).toHaveLength(4 * 3);
    expect(scored(samples(replay.dir))).toEqual(liveRows);
    const content = samples(live.dir).filter((r) => r.guest === 'all' && r.strategy === 'content');
    expect(Number(content.at(-1)!.cow_faults_total)).toBeGreaterThan(0); // the memory really changed between ticks
    const semantic = samples(replay.dir).filter((r) => r.guest === 'all' && r.strategy === 'semantic');
    expect(semantic.every((r) => r.status === 'ok' && Number(r.shared_pages) > 1000)).toBe(true); // System.map checks ran on recorded memory
    const run = JSON.parse(fs.readFileSync(path.join(replay.dir, 'run.json'), 'utf8')) as { backend: { name: string } };
    expect(run.backend.name).toBe('replay');
  }, 120_000);

  it('refuses a truncated recording on the command line, naming the file, and scores nothing', async () => {
    const entry = manifest.segments[0]!.ticks[2]!.guests[0]!;
    const file = path.join(live.dir, 'recording', entry.file);
    fs.truncateSync(file, Math.floor(entry.bytes / 2));
    const out = path.join(resultsRoot, 'refused');
    const child = await execa(process.execPath, [path.join(projectRoot, 'bin', 'xme.js'), 'replay', live.dir, '--results', out], { reject: false });
    expect(child.exitCode).toBe(1);
    expect(child.stderr).toContain(`${entry.file} has ${Math.floor(entry.bytes / 2)} bytes, the manifest says ${entry.bytes} (truncated)`);
    expect(fs.existsSync(out)).toBe(false);
  }, 60_000);
});
