/**
 * End to end: a mixed fleet (scenario field guestImages) of 4 busybox guests on two builds of Debian's cloud
 * kernel — guests 0 and 2 on the `cloud` image (the current ABI), guests 1 and 3 on `cloud@6.1.0-56` — booted by
 * one QEMU backend, nokaslr. Semantic sharing locates every guest with its own image's System.map (its banner
 * and kallsyms checked against the running kernel) and proposes kernel-code pages only among guests of one
 * build: every group it proposes lies within {g0, g2} or {g1, g3}, and it finds each build's whole code range
 * (a known answer: the two System.maps' [_text, _etext) spans). Content-based sharing, which knows no build,
 * finds non-zero pages common to guests of both builds (the busybox initramfs is the same package in both).
 * Skipped, visibly, if apt knows no 6.1.0-56 cloud kernel.
 */
import { execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { Guest } from '../backends/types.ts';
import { buildImage } from '../images/build.ts';
import type { GuestImage } from '../images/manifest.ts';
import { defaultHasher } from '../hashing/page-hasher.ts';
import { kernelInfo } from '../introspection/kernel-info.ts';
import { pageSpan } from '../introspection/kernel-layout.ts';
import type { ShareGroup } from '../sharing/types.ts';
import { ContentStrategy } from '../../strategies/content.ts';
import { SemanticStrategy } from '../../strategies/semantic.ts';
import type { StrategyContext } from '../../strategies/types.ts';

const OTHER = 'cloud@6.1.0-56';
const aptKnows = execaSync('apt-cache', ['show', 'linux-image-6.1.0-56-cloud-amd64-dbg'], { reject: false }).exitCode === 0;
const blocker = aptKnows ? undefined : 'apt knows no linux-image-6.1.0-56-cloud-amd64-dbg (run apt-get update)';
const because = blocker ? ` — SKIPPED: ${blocker}` : '';
if (blocker) process.stderr.write(`[e2e] mixed-fleet test skipped: ${blocker}\n`);

let images: GuestImage[];
let backend: QemuBackend;
let guests: Guest[];

beforeAll(async () => {
  if (blocker) return;
  const onStep = (message: string) => process.stderr.write(`[e2e] ${message}\n`);
  images = [(await buildImage('cloud', { onStep })).image, (await buildImage(OTHER, { onStep })).image];
  backend = await QemuBackend.create({ accelerator: 'auto' });
  guests = await backend.provision(images[0]!, 4, { memoryMiB: 256, kaslr: false, workload: { name: 'idle' }, guestImages: images });
}, 10 * 60_000);

afterAll(async () => {
  await backend?.close();
});

/** Which build each guest of a group runs (0: cloud, 1: the pinned one). */
const buildsOf = (group: ShareGroup) => new Set(group.pages.map((page) => page.guest % 2));

describe(`a mixed fleet of two kernel builds${because}`, () => {
  it.skipIf(!!blocker)('boots each guest on its own image', () => {
    expect(images[0]!.manifest.kernelRelease).not.toBe(images[1]!.manifest.kernelRelease);
    expect(guests.map((guest) => guest.image.manifest.kernelRelease)).toEqual([0, 1, 0, 1].map((i) => images[i]!.manifest.kernelRelease));
  });

  it.skipIf(!!blocker)(
    "semantic shares kernel code within each build only, each guest checked with its build's System.map; content finds pages common across builds",
    async () => {
      const hasher = await defaultHasher();
      const context: StrategyContext = { guests, image: images[0]!, kernel: kernelInfo(images[0]!), hasher };
      const semantic = new SemanticStrategy({ rodata: false, route: 'both' });
      const content = new ContentStrategy({ zeroPages: true });
      await Promise.all(guests.map((guest) => guest.pause()));
      let semanticScan: Awaited<ReturnType<SemanticStrategy['scan']>>;
      let contentScan: Awaited<ReturnType<ContentStrategy['scan']>>;
      try {
        const residency = guests.map((guest) => guest.hostResidency!.residentPages());
        semanticScan = await semantic.scan(context);
        contentScan = await content.scan({ ...context, residency });
      } finally {
        await Promise.all(guests.map((guest) => guest.resume()));
      }

      expect(semanticScan.refused).toBeUndefined();
      // Each guest was located and checked with its own build's System.map (the note names the release).
      for (const [g, guest] of guests.entries()) {
        expect(semanticScan.notes.some((note) => note.startsWith(`${guest.id}: ${images[g % 2]!.manifest.kernelRelease} kernel at`))).toBe(true);
      }
      // Known answer: each build's whole [_text, _etext), from its own System.map, identical in its two guests.
      const spans = images.map((image) => {
        const { layout } = kernelInfo(image);
        return pageSpan(layout, layout.code).count;
      });
      expect(semanticScan.metrics.kernel_builds).toBe(2);
      expect(semanticScan.metrics.kernel_code_pages).toBe(spans[0]! + spans[1]!);
      expect(semanticScan.metrics.kernel_code_identical_pages).toBeGreaterThanOrEqual(0.99 * (spans[0]! + spans[1]!));
      // Every group it proposes lies within one build: {g0, g2} or {g1, g3}.
      expect(semanticScan.groups.length).toBeGreaterThan(0.99 * (spans[0]! + spans[1]!));
      for (const group of semanticScan.groups) expect(buildsOf(group).size).toBe(1);

      // Content knows no build: some non-zero groups hold guests of both builds.
      const acrossBuilds = contentScan.groups.filter((group) => !group.zero && buildsOf(group).size === 2);
      process.stderr.write(
        `[e2e] semantic: ${semanticScan.groups.length} groups, each within one build (code spans ${spans.join(' + ')} pages); ` +
          `content: ${contentScan.groups.length} groups, ${acrossBuilds.length} non-zero ones across builds\n`,
      );
      expect(acrossBuilds.length).toBeGreaterThan(100);
    },
    5 * 60_000,
  );
});
