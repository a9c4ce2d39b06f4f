/**
 * Linux KSM as a real peer, on real guests: a ksm-peer run gives KSM shared pages, ksmd CPU and counters that
 * move, the accounted strategies keep scoring the same guests, KSM's frames saved agree with the content
 * strategy's host-resident figure, and every KSM knob of the host is back to its value afterwards — after a
 * normal run, after Ctrl-C, and after a SIGKILL of the harness (its guard restores them; the next run says so).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, runtimeBaseDir } from '../util/paths.ts';
import { defaultImage, processRunning, qemuPids } from '../testing/e2e.ts';
import { loadScenario, withOverrides } from '../scenario/scenario.ts';
import { runWithOutputs } from '../cli/run-outputs.ts';
import { takeKsmTestLock } from '../testing/ksm-test-lock.ts';

const KNOBS = ['run', 'pages_to_scan', 'sleep_millisecs', 'use_zero_pages', 'smart_scan', 'advisor_mode', 'max_page_sharing', 'merge_across_nodes'];
const knobs = () => Object.fromEntries(KNOBS.map((k) => [k, fs.readFileSync(`/sys/kernel/mm/ksm/${k}`, 'utf8').trim()]));
const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-ksm-test-'));
let before: Record<string, string>;

let releaseLock: () => void = () => undefined;
beforeAll(async () => {
  await defaultImage();
  releaseLock = await takeKsmTestLock(); // test files that use KSM take turns (it is host-wide)
  before = knobs();
}, 1_000_000);
afterAll(() => {
  releaseLock();
  fs.rmSync(resultsRoot, { recursive: true, force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
});

type Row = Record<string, string>;
const metricsOf = (row: Row) =>
  Object.fromEntries(
    (row.strategy_metrics ?? '')
      .split(';')
      .filter(Boolean)
      .map((kv) => kv.split('='))
      .map(([k, v]) => [k, Number(v)]),
  );

// The xme children keep their KSM state file in a folder of this test's own: any other `xme run` on the host
// (other test files run in parallel) restores a dead owner's state from /run/xme, and would otherwise take the
// SIGKILL case's "next run" away from the run this test starts. The knobs themselves are the real ones.
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-ksm-state-'));

function xme(args: string[]) {
  const child = execa(process.execPath, [path.join(projectRoot, 'bin', 'xme.js'), ...args, '--results', resultsRoot], {
    reject: false,
    env: { XME_KSM_STATE_DIR: stateDir },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const waitFor = async (pattern: RegExp, ms: number) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(stderr).toMatch(pattern);
  };
  return { child, waitFor, stderr: () => stderr };
}

describe('ksm-peer on real guests', () => {
  it('KSM merges for real beside the accounted strategies, and the host settings come back', async () => {
    const scenario = withOverrides(loadScenario('ksm-peer'), { guests: [2], durationS: 30, tickS: 10 });
    const outcome = await runWithOutputs({ scenario, resultsRoot });
    expect(outcome.status).toBe('completed');
    expect(knobs()).toEqual(before);

    const rows = parse(fs.readFileSync(path.join(outcome.dir, 'samples.csv'), 'utf8'), { columns: true }) as Row[];
    const totals = (strategy: string) => rows.filter((r) => r.strategy === strategy && r.guest === 'all');
    const ksm = totals('ksm');
    expect(ksm.length).toBe(4); // ticks at 0, 10, 20, 30 s
    const last = ksm.at(-1)!;
    const m = metricsOf(last);
    expect(Number(last.shared_pages)).toBeGreaterThan(1000);
    expect(Number(last.frames_saved)).toBeGreaterThan(0);
    expect(last.sharing_mode).toBe('enforced');
    expect(last.cow_method).toBe('kernel');
    expect(last.cow_count).toBe('host-wide');
    expect(last.cpu_method).toMatch(/schedstat/);
    expect(m.ksmd_cpu_ms).toBeGreaterThan(0);
    expect(m.ksm_pages_scanned).toBeGreaterThan(Number(metricsOf(ksm[0]!).ksm_pages_scanned ?? 0)); // counters move
    expect(m.ksm_full_scans).toBeGreaterThanOrEqual(2);
    expect(m.ksm_merging_pages).toBeGreaterThan(0);
    expect(Number(last.tick_cpu_ms)).toBeGreaterThan(0);
    // The accounted strategies scored the same guests through the new memory path.
    for (const strategy of ['semantic', 'content']) {
      const row = totals(strategy).at(-1)!;
      expect(row.sharing_mode).toBe('accounted');
      expect(Number(row.shared_pages)).toBeGreaterThan(0);
      expect(row.cpu_method).toMatch(/CLOCK_THREAD_CPUTIME_ID/);
    }
    // Cross-check (KSM converged: ≥ 2 full scans): KSM's frames saved vs content's frames saved over pages the
    // host really backs. They differ by what changed between KSM's scan and the harness's snapshot (the
    // workload rewrites its pages) and by pages KSM leaves alone (volatile, or skipped by smart_scan): 15 %.
    const content = totals('content').at(-1)!;
    const ksmSaved = Number(last.frames_saved);
    const contentSaved = Number(content.host_frames_saved);
    expect(contentSaved).toBeGreaterThan(0);
    expect(Math.abs(ksmSaved - contentSaved) / contentSaved).toBeLessThan(0.15);
    const summary = parse(fs.readFileSync(path.join(outcome.dir, 'summary.csv'), 'utf8'), { columns: true }) as Row[];
    expect(summary.find((r) => r.strategy === 'ksm' && r.metric === 'cpu_ms_per_s')?.method).toMatch(/schedstat/);
  }, 240_000);

  it('restores every KSM knob after Ctrl-C', async () => {
    const run = xme(['run', '--scenario', 'ksm-peer', '--guests', '2', '--duration', '60']);
    await run.waitFor(/KSM on:/, 120_000);
    expect(knobs().run).toBe('1');
    const guests = qemuPids(path.join(runtimeBaseDir(), `xme-${run.child.pid}-`));
    expect(guests.length).toBe(2);
    run.child.kill('SIGINT');
    expect((await run.child).exitCode).toBe(130);
    expect(knobs()).toEqual(before);
    for (const pid of guests) expect(processRunning(pid)).toBe(false);
  }, 180_000);

  it('after a SIGKILL of the harness, its guard restores the knobs within 2 s, and the next run says so in run.json', async () => {
    const run = xme(['run', '--scenario', 'ksm-peer', '--guests', '2', '--duration', '60']);
    await run.waitFor(/KSM on:/, 120_000);
    expect(knobs()).not.toEqual(before); // the run changed them: the test is real
    run.child.kill('SIGKILL');
    const killedAt = Date.now();
    await run.child;
    // Nobody but the guard acts in these 2 s: no other xme runs with this test's state folder.
    while (Date.now() - killedAt < 2000 && JSON.stringify(knobs()) !== JSON.stringify(before)) await new Promise((r) => setTimeout(r, 20));
    expect(knobs()).toEqual(before);
    const next = xme(['run', '--scenario', 'smoke', '--duration', '1', '--tick', '1']);
    const result = await next.child;
    expect(result.exitCode).toBe(0);
    const said = new RegExp(
      `xme process ${run.child.pid} \\(holding KSM since [^)]*\\) ended without restoring the host's KSM settings .*its KSM guard \\(pid \\d+\\) restored them`,
    );
    expect(next.stderr()).toMatch(said);
    const records = fs
      .readdirSync(resultsRoot)
      .map((id) => path.join(resultsRoot, id, 'run.json'))
      .filter((f) => fs.existsSync(f))
      .map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as { scenario: { name: string }; warnings: string[] });
    expect(records.filter((r) => r.scenario.name === 'smoke').some((r) => r.warnings.some((w) => said.test(w)))).toBe(true);
    expect(knobs()).toEqual(before);
  }, 240_000);
});
