/**
 * Starts an application workload (harness/workloads/app-workloads.ts) in a booted system guest through its
 * guest agent: the setup once, the readiness check until it passes, then the load loop, spawned; it is running
 * once its tool has counted a first op. Whatever fails on the way is one error naming the guest, the step and
 * the tool's last output. Backend-neutral: it needs a GuestAgent and the guest's workload output.
 */
import { XmeError } from '../util/errors.ts';
import type { AppWorkloadName, WorkloadSpec } from '../vocabulary.ts';
import { appWorkload, guestScript, type AppImageFacts, type AppOutput } from '../workloads/app-workloads.ts';
import type { GuestAgent, GuestExecResult } from './types.ts';

export interface AppWorkloadStart {
  /** How messages name the guest, e.g. "guest g0". */
  label: string;
  agent: GuestAgent;
  workload: WorkloadSpec & { name: AppWorkloadName };
  image: AppImageFacts;
  /** Where the load's output is parsed; `poll` reads what has arrived since. */
  output: AppOutput;
  poll(): void;
  alive(): boolean;
  /** Why the guest is gone, once alive() is false. */
  whyGone(): string;
  deadline: number;
}

/** The last non-empty line of a command's output, for a one-line error. */
export function lastLine(result: Pick<GuestExecResult, 'stdout' | 'stderr'>): string {
  const lines = `${result.stdout}\n${result.stderr}`
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter(Boolean);
  return lines.at(-1) ?? 'no output';
}

function how(result: GuestExecResult): string {
  return result.exitCode !== undefined ? `status ${result.exitCode}` : `signal ${result.signal}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Run setup and readiness, spawn the load; resolves once it counts ops (with the load's pid), or fails. */
export async function startAppWorkload(start: AppWorkloadStart): Promise<number | undefined> {
  const { label, agent, output, deadline } = start;
  const app = appWorkload(start.workload.name);
  const params = start.workload.params ?? {};
  const left = () => Math.max(1000, deadline - Date.now());
  const what = `${label}: workload ${app.name}`;

  if (app.setup) {
    const result = await agent.exec('/bin/sh', ['-c', `cd /tmp && ${app.setup(params, start.image)}`], { timeoutMs: left() });
    if (result.exitCode !== 0) throw new XmeError(`${what}: its setup failed (${how(result)}): ${lastLine(result)}`);
  }
  if (app.ready) {
    for (;;) {
      const result = await agent.exec('/bin/sh', ['-c', app.ready], { timeoutMs: Math.min(30_000, left()) });
      if (result.exitCode === 0) break;
      if (Date.now() > deadline) throw new XmeError(`${what}: the application was not ready in time (\`${app.ready}\`: ${how(result)}: ${lastLine(result)})`);
      await sleep(1000);
    }
  }
  if (!app.load) return undefined;

  const pid = await agent.spawn('/bin/sh', ['-c', guestScript(app.load(params, start.image))]);
  let nextStatusAt = Date.now() + 2000;
  for (;;) {
    start.poll();
    const failure = output.failure();
    if (failure) throw new XmeError(`${what} failed to start: ${failure}`);
    if (output.ops > 0) return pid;
    if (!start.alive()) throw new XmeError(`${what} did not start: ${start.whyGone()}`);
    if (Date.now() > deadline) {
      const last = output.tail(1)[0]?.trim();
      throw new XmeError(`${what} counted no op in time (${last ? `last output: ${last}` : 'no output yet'})`, 'the host may be overloaded: boot fewer guests');
    }
    // The load script itself may end at once (the port missing, a shell error): it would print nothing.
    if (Date.now() >= nextStatusAt) {
      nextStatusAt = Date.now() + 2000;
      const status = await agent.status(pid);
      if (status.exited) {
        start.poll();
        throw new XmeError(`${what}: its load script ended (${how(status)}) ${output.failure() ?? `with no output: ${lastLine(status)}`}`);
      }
    }
    await sleep(250);
  }
}
