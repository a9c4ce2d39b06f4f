/** run.json: everything needed to reproduce and to judge a run. */
import fs from 'node:fs';
import os from 'node:os';
import { execaSync } from 'execa';
import { projectRoot } from '../util/paths.ts';

export interface HostInfo {
  hostname: string;
  os: string;
  kernel: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  node: string;
}

export function hostInfo(): HostInfo {
  let osName = os.type();
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // keep os.type()
  }
  return {
    hostname: os.hostname(),
    os: osName,
    kernel: os.release(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
  };
}

export interface HarnessInfo {
  version: string;
  gitCommit: string;
  /** true if the work tree had uncommitted changes: the commit alone does not reproduce the run. */
  gitDirty: boolean | undefined;
}

export function harnessInfo(): HarnessInfo {
  const version = (JSON.parse(fs.readFileSync(`${projectRoot}/package.json`, 'utf8')) as { version: string }).version;
  const git = (args: string[]) => execaSync('git', args, { cwd: projectRoot, reject: false });
  const commit = git(['rev-parse', 'HEAD']);
  const status = git(['status', '--porcelain', '--untracked-files=no']);
  return {
    version,
    gitCommit: commit.exitCode === 0 ? commit.stdout.trim() : 'unknown (not a git checkout)',
    gitDirty: status.exitCode === 0 ? status.stdout.trim().length > 0 : undefined,
  };
}

/** Writes run.json atomically (write then rename), so a reader never sees half a file. */
export function writeJsonAtomically(file: string, value: unknown): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, `${JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`);
  fs.renameSync(temporary, file);
}
