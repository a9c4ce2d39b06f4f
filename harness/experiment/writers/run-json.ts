/**
 * run.json: everything needed to reproduce and to judge a run. Written when the run starts (status
 * 'running', so that a killed run is found: abandoned-runs.ts) and again, sealed, when it ends.
 */
import path from 'node:path';
import { COW_DEFINITION, type Ledger } from '../../sharing/ledger.ts';
import { writeJsonAtomically } from '../run-record.ts';
import { CPU_METHOD } from '../samples.ts';
import type { ResultWriter, RunEnd, RunHeader } from './result-writer.ts';

const SHARING_MODES: Record<Ledger['mode'], string> = {
  enforced: 'enforced (the hypervisor backs byte-verified pages by one frame; counts are its own)',
  accounted: 'accounted (the backend does not merge pages; the ledger accounts what each strategy would share)',
};

/** run.json's content: `end` undefined while the run is running. Key order is the file's, kept stable. */
export function runRecord(run: RunHeader, end: RunEnd | undefined) {
  return {
    schema: 2,
    runId: run.runId,
    status: end?.status ?? 'running',
    owner: run.owner,
    startedAt: run.startedAt,
    endedAt: end?.endedAt,
    scenario: run.scenario,
    host: run.host,
    harness: run.harness,
    argv: run.argv,
    backend: end?.backend ?? { name: run.scenario.backend, note: 'not started yet' },
    sharingMode: end?.sharingModes.length
      ? end.sharingModes.map((mode) => SHARING_MODES[mode]).join('; ')
      : 'not known yet (no ledger made)',
    image: { ...run.image.manifest, dir: run.image.dir },
    kernel: { version: run.kernel.version, systemMap: run.systemMap, layout: run.kernel.layout },
    hasher: run.hasher,
    cowMethod: end?.cowMethods.length ? end.cowMethods.join('; ') : 'not known yet (no ledger made)',
    cowDefinition: COW_DEFINITION,
    cpuMethod: CPU_METHOD,
    repetitionsCompleted: end?.repetitions.length ?? 0,
    warnings: end?.warnings ?? [],
    notes: end?.notes ?? [],
    files: { samples: 'samples.csv', summary: 'summary.csv', logs: 'logs/' },
  };
}

export class RunJsonWriter implements ResultWriter {
  private run: RunHeader | undefined;

  begin(run: RunHeader): void {
    this.run = run;
    writeJsonAtomically(this.file(run), runRecord(run, undefined));
  }

  end(end: RunEnd): void {
    if (this.run) writeJsonAtomically(this.file(this.run), runRecord(this.run, end));
  }

  private file(run: RunHeader): string {
    return path.join(run.dir, 'run.json');
  }
}
