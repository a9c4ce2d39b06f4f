/**
 * IN-MEMORY STAND-IN BACKEND, for unit tests of the tick loop and the runner only: "guests" are MemoryGuests
 * (a Buffer plays guest RAM) that boot at once, and a test decides what they write between ticks. Like the
 * hyperfine mock executor, it lets the loop's bookkeeping (CoW counts, sample order, summaries, interruption)
 * be tested in milliseconds; everything it stands in for runs on real QEMU guests in the *.e2e.test.ts files.
 * It accounts (enforcesSharing = false): an enforcing backend's share()/counters() are not modelled.
 */
import type { Backend, BackendInfo, HostResidency, ProvisionOptions } from '../backends/types.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { BackendFactory, BackendOptions } from '../backends/registry.ts';
import type { GuestImage } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import { kernelLayout } from '../introspection/kernel-layout.ts';
import { SystemMap } from '../introspection/system-map.ts';
import { parseKernelVersionString } from '../introspection/bzimage.ts';
import { MemoryGuest } from './memory-guest.ts';

/** A MemoryGuest that "runs" between the runner's pause and resume: the test's workload is called on resume. */
export class FakeGuest extends MemoryGuest {
  /** Cleared by stop(): the runner must notice a guest that died. */
  running = true;
  paused = false;
  /** Times the runner resumed this guest, i.e. ticks scored so far (with pauseDuringScan). */
  resumes = 0;
  /** Which pages the host backs (1) or not (0); set it to model QEMU's RAM-file holes. */
  hostResidency?: HostResidency;

  constructor(
    id: string,
    memoryPages: number,
    private readonly workload?: (guest: FakeGuest, resumes: number) => void,
  ) {
    super(id, memoryPages);
  }

  override pause(): Promise<void> {
    this.paused = true;
    return Promise.resolve();
  }

  /** The guest runs again: this is where its workload writes (between two ticks, never while scored). */
  override resume(): Promise<void> {
    this.paused = false;
    this.resumes++;
    this.workload?.(this, this.resumes);
    return Promise.resolve();
  }

  /** The fake image every fake guest boots (strategies ask a guest which kernel it runs: mixed fleets). */
  override get image(): GuestImage {
    return fakeImage();
  }

  override alive(): boolean {
    return this.running;
  }

  stop(): void {
    this.running = false;
  }
}

export interface FakeBackendOptions {
  /** Pages per guest; default memoryMiB × 256, as a real guest. A few pages keep a test fast. */
  memoryPages?: number;
  /** Fills a guest's memory when it is provisioned (all zeros otherwise). */
  boot?: (guest: FakeGuest, index: number) => void;
  /** The guests' workload: called as each guest is resumed after a tick was scored (needs pauseDuringScan). */
  workload?: (guest: FakeGuest, resumes: number) => void;
}

export class FakeBackend implements Backend {
  readonly name = 'fake';
  readonly enforcesSharing = false;
  guests: FakeGuest[] = [];
  readonly provisioned: ProvisionOptions[] = [];
  closed = false;

  constructor(
    private readonly options: FakeBackendOptions = {},
    readonly backendOptions: BackendOptions = {},
  ) {}

  provision(_image: GuestImage, count: number, options: ProvisionOptions): Promise<FakeGuest[]> {
    this.provisioned.push(options);
    const pages = this.options.memoryPages ?? (options.memoryMiB * 2 ** 20) / PAGE_SIZE;
    this.guests = Array.from({ length: count }, (_, i) => new FakeGuest(`g${i}`, pages, this.options.workload));
    this.guests.forEach((guest, i) => this.options.boot?.(guest, i));
    return Promise.resolve(this.guests);
  }

  info(): BackendInfo {
    return {
      name: 'fake',
      version: 'fake 1',
      accelerator: 'none',
      acceleratorReason: 'in-memory stand-in (harness/testing/fake-backend.ts)',
      cpuModel: 'none',
    };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A BackendFactory that makes FakeBackends and keeps them, so that a test can look at each repetition's. */
export function fakeBackendFactory(options: FakeBackendOptions = {}): BackendFactory & { made: FakeBackend[] } {
  const made: FakeBackend[] = [];
  return {
    made,
    check: () => Promise.resolve(),
    create: (backendOptions) => {
      const backend = new FakeBackend(options, backendOptions);
      made.push(backend);
      return Promise.resolve(backend);
    },
  };
}

/** A System.map just big enough for kernelLayout(): one page of code, one of rodata. */
export const FAKE_SYSTEM_MAP = [
  'ffffffff81000000 T _text',
  'ffffffff81000100 T asm_exc_divide_error',
  'ffffffff81001000 T _etext',
  'ffffffff81001000 D __start_rodata',
  'ffffffff81001100 D linux_banner',
  'ffffffff81002000 D __end_rodata',
  'ffffffff81002000 D idt_table',
  'ffffffff81003000 B _end',
].join('\n');

const FAKE_RELEASE = '6.1.0-0-fake-amd64';

/** An image that exists only as a manifest: enough for run.json; nothing can boot it but FakeBackend. */
export function fakeImage(): GuestImage {
  const file = (name: string) => ({ file: name, sha256: '0'.repeat(64), bytes: 0 });
  return {
    name: 'fake',
    dir: '/nonexistent/fake-image',
    manifest: {
      schema: 1,
      name: 'fake',
      recipeHash: 'fake',
      builtAt: '2000-01-01T00:00:00.000Z',
      kernelRelease: FAKE_RELEASE,
      kernel: { package: `linux-image-${FAKE_RELEASE}`, version: '0' },
      debugPackage: { package: `linux-image-${FAKE_RELEASE}-dbg`, version: '0' },
      busybox: { package: 'busybox', version: '0' },
      workloads: ['idle', 'memchurn', 'pagecache', 'cpu', 'cowprobe'],
      files: { vmlinuz: file('vmlinuz'), initramfs: file('initramfs.cpio'), systemMap: file('System.map'), config: file('config') },
    },
    path: (name) => `/nonexistent/fake-image/${name}`,
  };
}

/** The fake image's kernel: a real KernelInfo (parsed System.map, layout, version) with no files behind it. */
export function fakeKernel(): KernelInfo {
  const systemMap = SystemMap.parse(FAKE_SYSTEM_MAP, 'fake System.map');
  return {
    systemMap,
    layout: kernelLayout(systemMap),
    version: parseKernelVersionString(`${FAKE_RELEASE} (fake@xme) #1 SMP fake`),
  };
}
