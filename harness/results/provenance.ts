/** Where a run ran: the host and the harness build, recorded in run.json and in a suite's shard records. */
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
