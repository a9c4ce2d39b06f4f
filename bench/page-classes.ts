/**
 * `npx tsx bench/page-classes.ts [--json]`: CPU of one page classification (harness/introspection/page-classes.ts)
 * per GiB of guest memory, on one paused 1 GiB busybox guest of the cloud image (KASLR on, the cowprobe workload
 * holding 4096 anonymous pages), beside the one-off cost of opening the classifier (layout profile from the
 * cache, BTF and VMCOREINFO checks) and of making the profile from nothing (vmlinuz decompressed, BTF parsed).
 * Thread CPU of the calling thread; the first classification is reported apart (JIT warm-up), the rest as best
 * and median: from scratch (the classifier told to forget every earlier tick), then incremental (memmap-delta.ts)
 * with the guest unchanged and after 2 s of running; beside the host's load average (absolute times on a shared
 * machine mean little without it). --json prints the figures as one JSON object instead.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuBackend } from '../harness/backends/qemu/qemu-backend.ts';
import { buildImage } from '../harness/images/build.ts';
import { kernelInfo } from '../harness/introspection/kernel-info.ts';
import { locateKernelInMemory } from '../harness/introspection/kernel-locator.ts';
import { profileFromVmlinuz } from '../harness/introspection/layout-profile.ts';
import { agreementWithKernel, PageClassifier } from '../harness/introspection/page-classes.ts';
import { waitForCowprobe } from '../harness/workloads/cowprobe.ts';
import { PAGE_SIZE } from '../harness/vocabulary.ts';
import { best, median, timeRepeated } from './measure.ts';

const GUEST_MIB = 1024;
const RUNS = 10;
const say = (line: string) => process.stdout.write(`${line}\n`);

const { image } = await buildImage('cloud');
const kernel = kernelInfo(image);
const backend = await QemuBackend.create({ accelerator: 'auto' });
try {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-bench-profile-'));
  const fresh = await timeRepeated(1, () => profileFromVmlinuz(image.path('vmlinuz'), kernel.version, scratch));
  fs.rmSync(scratch, { recursive: true, force: true });

  const [guest] = await backend.provision(image, 1, {
    memoryMiB: GUEST_MIB,
    kaslr: true,
    workload: { name: 'cowprobe', params: { pages: 4096, writes: 0, same: 0, delay_ms: 600_000, interval_ms: 1000 } },
  });
  await waitForCowprobe(guest!, 'ready', 120_000);
  await guest!.pause();
  const placement = locateKernelInMemory(guest!, kernel);
  let classifier: PageClassifier | undefined;
  const open = await timeRepeated(1, () => {
    classifier = PageClassifier.open(guest!, kernel, placement);
  });
  let classes: ReturnType<PageClassifier['classify']> | undefined;
  // From scratch each time (the first tick of a run, or after a refusal): every frame classified.
  const runs = await timeRepeated(RUNS, () => {
    classifier!.forget();
    classes = classifier!.classify();
  });
  // Incremental, the guest unchanged since (paused throughout): the least a tick after the first costs.
  const unchanged = await timeRepeated(RUNS, () => classifier!.classify());
  // Incremental with the guest running between classifications, as ticks are: resumed for 2 s, paused, classified.
  const running: number[] = [];
  const redone: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await guest!.resume();
    await new Promise((done) => setTimeout(done, 2000));
    await guest!.pause();
    running.push((await timeRepeated(1, () => classifier!.classify())).cpuMs[0]!);
    redone.push(classifier!.lastRedone);
  }
  await guest!.resume();

  const gib = (guest!.memoryPages * PAGE_SIZE) / 2 ** 30;
  const steady = runs.cpuMs.slice(1);
  const result = {
    guest_mib: GUEST_MIB,
    profile_from_vmlinuz_cpu_ms: fresh.cpuMs[0]!,
    open_cpu_ms: open.cpuMs[0]!,
    first_classify_cpu_ms: runs.cpuMs[0]!,
    classify_cpu_ms_best: best(steady),
    classify_cpu_ms_median: median(steady),
    classify_cpu_ms_per_gib_best: best(steady) / gib,
    classify_cpu_ms_per_gib_median: median(steady) / gib,
    incremental_unchanged_cpu_ms_per_gib_median: median(unchanged.cpuMs.slice(1)) / gib,
    incremental_running_cpu_ms_per_gib_median: median(running) / gib,
    incremental_running_redone_frames_median: median(redone),
    load_average: os.loadavg(),
    counts: classes!.counts(),
    agreement: agreementWithKernel(classes!),
  };
  if (process.argv.includes('--json')) {
    say(JSON.stringify(result));
  } else {
    report(result);
  }
} finally {
  await backend.close();
}

function report(result: {
  profile_from_vmlinuz_cpu_ms: number;
  open_cpu_ms: number;
  first_classify_cpu_ms: number;
  classify_cpu_ms_best: number;
  classify_cpu_ms_median: number;
  classify_cpu_ms_per_gib_best: number;
  classify_cpu_ms_per_gib_median: number;
  incremental_unchanged_cpu_ms_per_gib_median: number;
  incremental_running_cpu_ms_per_gib_median: number;
  incremental_running_redone_frames_median: number;
  load_average: number[];
  agreement: ReturnType<typeof agreementWithKernel>;
}): void {
  say(
    `page classes of one ${GUEST_MIB} MiB guest (KASLR, cowprobe 4096 pages), thread CPU; load average ${result.load_average.map((x) => x.toFixed(1)).join(' ')}:`,
  );
  say(`  layout profile from the vmlinuz (decompress + parse BTF): ${result.profile_from_vmlinuz_cpu_ms.toFixed(0)} ms, once per kernel build (then cached)`);
  say(`  open (cached profile, BTF and VMCOREINFO checks): ${result.open_cpu_ms.toFixed(1)} ms, once per guest`);
  say(
    `  classify: first ${result.first_classify_cpu_ms.toFixed(1)} ms; then best ${result.classify_cpu_ms_best.toFixed(1)} ms, median ${result.classify_cpu_ms_median.toFixed(1)} ms`,
  );
  say(
    `  per GiB of guest memory: best ${result.classify_cpu_ms_per_gib_best.toFixed(1)} ms, median ${result.classify_cpu_ms_per_gib_median.toFixed(1)} ms (from scratch)`,
  );
  say(
    `  incremental, per GiB: ${result.incremental_unchanged_cpu_ms_per_gib_median.toFixed(2)} ms with the guest unchanged, ${result.incremental_running_cpu_ms_per_gib_median.toFixed(2)} ms after 2 s of running (median ${result.incremental_running_redone_frames_median} frames redone)`,
  );
  for (const row of result.agreement)
    say(`  ${row.what.padEnd(26)} classified ${String(row.classified).padStart(7)}  kernel ${String(row.kernel).padStart(7)}  (${row.counter})`);
}
