/**
 * A fake /sys/kernel/mm/ksm for unit tests: a temporary folder of plain files (XME_KSM_SYSFS), and a
 * temporary state directory (XME_KSM_STATE_DIR). It tests the save/restore logic, not the kernel: a plain
 * file takes any value, and advisor_mode reads back as written ("scan-time", without brackets).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseKnobText } from '../ksm-knobs.ts';

/** As this Linux 6.18 host boots. */
export const FAKE_KSM_KNOBS: Readonly<Record<string, string>> = {
  run: '0',
  pages_to_scan: '100',
  sleep_millisecs: '20',
  use_zero_pages: '0',
  smart_scan: '1',
  advisor_mode: '[none] scan-time',
  max_page_sharing: '256',
  merge_across_nodes: '1',
  pages_shared: '11',
  pages_sharing: '22',
  pages_unshared: '33',
  pages_volatile: '44',
  pages_scanned: '55',
  full_scans: '66',
  ksm_zero_pages: '77',
  general_profit: '-88',
};

export interface FakeKsm {
  sysfs: string;
  stateDir: string;
  stateFile: string;
  read(knob: string): string;
  write(knob: string, value: string): void;
  /** Every file's value as the knobs are read (trimmed; advisor_mode's selected word). */
  snapshot(): Record<string, string>;
  /** Back to FAKE_KSM_KNOBS, no state file. */
  reset(): void;
  remove(): void;
}

export function createFakeKsm(): FakeKsm {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-fake-ksm-'));
  const sysfs = path.join(root, 'ksm');
  const stateDir = path.join(root, 'run');
  const previous = { sysfs: process.env.XME_KSM_SYSFS, state: process.env.XME_KSM_STATE_DIR };
  const fake: FakeKsm = {
    sysfs,
    stateDir,
    stateFile: path.join(stateDir, 'ksm-state.json'),
    read: (knob) => fs.readFileSync(path.join(sysfs, knob), 'utf8'),
    write: (knob, value) => fs.writeFileSync(path.join(sysfs, knob), value),
    snapshot: () =>
      Object.fromEntries(
        fs
          .readdirSync(sysfs)
          .sort()
          .map((name) => [name, parseKnobText(fake.read(name))]),
      ),
    reset: () => {
      fs.rmSync(root, { recursive: true, force: true });
      fs.mkdirSync(sysfs, { recursive: true });
      for (const [knob, value] of Object.entries(FAKE_KSM_KNOBS)) fake.write(knob, `${value}\n`);
    },
    remove: () => {
      fs.rmSync(root, { recursive: true, force: true });
      restoreEnv('XME_KSM_SYSFS', previous.sysfs);
      restoreEnv('XME_KSM_STATE_DIR', previous.state);
    },
  };
  process.env.XME_KSM_SYSFS = sysfs;
  process.env.XME_KSM_STATE_DIR = stateDir;
  fake.reset();
  return fake;
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
