import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ownerIdentity, type RunOwner } from '../util/process-identity.ts';
import { markAbandonedRuns } from './abandoned-runs.ts';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-abandoned-test-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function writeRun(runId: string, content: unknown): string {
  const dir = path.join(root, runId);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'run.json');
  fs.writeFileSync(file, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  return file;
}

function runJson(status: string, owner?: RunOwner): Record<string, unknown> {
  return { schema: 1, runId: 'x', status, startedAt: '2025-01-01T00:00:00.000Z', ...(owner ? { owner } : {}), warnings: [] };
}

function read(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** The PID of a process that has run and exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync('true');
  expect(child.status).toBe(0);
  return child.pid!;
}

const NOW = new Date('2025-06-01T12:00:00.000Z');

describe('ownerIdentity', () => {
  it('names this process, its host, its start time and the boot', () => {
    const owner = ownerIdentity();
    expect(owner.pid).toBe(process.pid);
    expect(owner.hostname).toBe(os.hostname());
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    expect(owner.pidStartTicks).toBe(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]));
    expect(owner.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ownerIdentity()).toEqual(owner); // stable
  });
});

describe('markAbandonedRuns', () => {
  it('marks runs whose owner is gone, leaves live, finished, foreign and malformed ones alone', () => {
    const me = ownerIdentity();
    const dead = writeRun('a-dead-owner', runJson('running', { ...me, pid: deadPid(), pidStartTicks: 1 }));
    const mine = writeRun('b-mine', runJson('running', me));
    const done = writeRun('c-completed', runJson('completed', { ...me, pid: deadPid() }));
    const foreign = writeRun('d-other-host', runJson('running', { pid: deadPid(), hostname: `not-${os.hostname()}` }));
    const broken = writeRun('e-malformed', '{"status": "running", "owner": ');
    fs.mkdirSync(path.join(root, 'f-no-run-json'));
    fs.writeFileSync(path.join(root, 'README.md'), 'not a run\n');
    const untouched = [mine, done, foreign, broken].map((file) => [file, fs.readFileSync(file, 'utf8')] as const);

    const report = markAbandonedRuns(root, NOW);

    expect(report.abandoned).toEqual(['a-dead-owner']);
    expect(report.unreadable.map((u) => u.runId)).toEqual(['e-malformed']);
    expect(report.unreadable[0]!.reason).toMatch(/JSON/);
    const marked = read(dead);
    expect(marked).toMatchObject({
      schema: 1,
      runId: 'x',
      status: 'abandoned',
      startedAt: '2025-01-01T00:00:00.000Z',
      abandonedFoundAt: '2025-06-01T12:00:00.000Z',
      warnings: [],
    });
    const pid = (marked.owner as RunOwner).pid;
    expect(marked.abandonedNote).toBe(
      `the harness process (pid ${pid}) ended without sealing this run (killed?); samples.csv holds every row written before that`,
    );
    for (const [file, before] of untouched) expect(fs.readFileSync(file, 'utf8')).toBe(before);
    // Atomic rewrite: no temporary file left beside it.
    expect(fs.readdirSync(path.dirname(dead))).toEqual(['run.json']);

    // A second pass finds nothing new.
    expect(markAbandonedRuns(root, NOW)).toEqual({ abandoned: [], unreadable: report.unreadable });
  });

  it('sees a reused PID (same PID, another start time) and a reboot as a gone owner', () => {
    const me = ownerIdentity();
    writeRun('reused-pid', runJson('running', { ...me, pidStartTicks: me.pidStartTicks! + 1 }));
    writeRun('rebooted', runJson('running', { ...me, bootId: '00000000-0000-0000-0000-000000000000' }));
    writeRun('alive-without-start-time', runJson('running', { pid: me.pid, hostname: me.hostname }));
    expect(markAbandonedRuns(root, NOW)).toEqual({ abandoned: ['rebooted', 'reused-pid'], unreadable: [] });
  });

  it('marks a running run without owner (old run.json) abandoned, saying the owner could not be checked', () => {
    const file = writeRun('old-format', runJson('running'));
    expect(markAbandonedRuns(root, NOW).abandoned).toEqual(['old-format']);
    expect(read(file).status).toBe('abandoned');
    expect(read(file).abandonedNote).toMatch(/could not be checked .*predates the owner field.*samples\.csv holds every row/);
  });

  it('reports malformed run.json of every kind without throwing', () => {
    writeRun('array', '[1, 2]');
    writeRun('no-status', { runId: 'x' });
    writeRun('bad-owner-pid', runJson('running', { pid: 'abc', hostname: os.hostname() } as unknown as RunOwner));
    writeRun('bad-owner', { ...runJson('running'), owner: 42 });
    writeRun('empty', '');
    const report = markAbandonedRuns(root, NOW);
    expect(report.abandoned).toEqual([]);
    expect(Object.fromEntries(report.unreadable.map((u) => [u.runId, u.reason]))).toEqual({
      array: 'run.json is not a JSON object',
      'bad-owner': 'owner is not an object',
      'bad-owner-pid': 'owner.pid "abc" is not a PID',
      empty: expect.stringMatching(/JSON/),
      'no-status': 'run.json has no status',
    });
  });

  it('a bad owner on a finished run does not matter; a missing results folder is no runs', () => {
    writeRun('finished', { ...runJson('completed'), owner: 'whatever' });
    expect(markAbandonedRuns(root, NOW)).toEqual({ abandoned: [], unreadable: [] });
    expect(markAbandonedRuns(path.join(root, 'missing'))).toEqual({ abandoned: [], unreadable: [] });
  });
});
