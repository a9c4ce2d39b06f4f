/**
 * Page classes for the strategies that share by what a page is (Strategy.readsPageClasses): the tick loop asks
 * this provider once per tick, while the guests are paused and before any strategy scores, and every such
 * strategy is given the same classes (StrategyContext.pageClasses). Strategies never read struct pages.
 *
 * Billing (tick-loop.ts): the classification's CPU, this thread's (measureThreadCpu), is added whole to the scan
 * of every strategy that reads classes — each of them running alone would pay all of it — and is shown apart
 * as classify_cpu_ms; the harness does the work once per tick however many strategies use it.
 *
 * One-off work per guest, at its first tick: its kernel is located by the memory-only route with the kallsyms
 * check (introspection/kernel-locator.ts) and the classifier opened (the layout profile from the image's
 * vmlinuz, cached per build, one profile shared by every guest of the build; VMCOREINFO and the BTF in guest
 * memory checked against it). Each tick after: linux_banner re-read (a guest that rebooted is caught), then
 * classify(), which refuses a guest that changes while it is read.
 *
 * A refusal of any guest (PageClassRefusal, KernelMismatchError — any XmeError) gives no classes this tick, with
 * the reason; the next tick tries again (a guest opened already keeps its classifier). Guests not paused while
 * scored (pauseDuringScan false) get no classes at all: the classes of a running guest would not hold at the
 * share, which free-page reclaim relies on.
 */
import type { Guest } from '../backends/types.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import { locateKernelInMemory, verifyBanner } from '../introspection/kernel-locator.ts';
import type { KernelPlacement } from '../introspection/kernel-placement.ts';
import type { LayoutProfile } from '../introspection/layout-profile.ts';
import { PageClassifier, type PageClasses } from '../introspection/page-classes.ts';
import { XmeError } from '../util/errors.ts';

export type PageClassesOrRefusal = { guests: PageClasses[] } | { refused: string };

/** Where the tick loop gets page classes from (a stand-in in unit tests: harness/testing/crafted-page-classes.ts). */
export interface PageClassSource {
  /** The classes of every guest now, in the order given; `paused` says whether the guests are paused. */
  classify(guests: readonly Guest[], paused: boolean): PageClassesOrRefusal;
  /** One-off facts for run.json since the last call (where each kernel was found, where the profile came from). */
  takeNotes(): string[];
}

export class TickPageClassifier implements PageClassSource {
  private readonly opened = new Map<Guest, { classifier: PageClassifier; placement: KernelPlacement }>();
  private profile: LayoutProfile | undefined;
  private notes: string[] = [];

  constructor(
    private readonly kernel: KernelInfo,
    private readonly options: { cache?: string } = {},
  ) {}

  classify(guests: readonly Guest[], paused: boolean): PageClassesOrRefusal {
    if (!paused) return { refused: 'page classes need paused guests (the scenario sets pauseDuringScan false)' };
    try {
      return { guests: guests.map((guest) => this.classifierOf(guest).classify()) };
    } catch (error) {
      if (!(error instanceof XmeError)) throw error;
      return { refused: error.message };
    }
  }

  takeNotes(): string[] {
    const notes = this.notes;
    this.notes = [];
    return notes;
  }

  private classifierOf(guest: Guest): PageClassifier {
    const known = this.opened.get(guest);
    if (known) {
      verifyBanner(guest, this.kernel.layout, known.placement, this.kernel.version);
      return known.classifier;
    }
    const placement = locateKernelInMemory(guest, this.kernel);
    const classifier = PageClassifier.open(guest, this.kernel, placement, {
      ...(this.profile ? { profile: this.profile } : {}),
      ...(this.options.cache ? { cache: this.options.cache } : {}),
    });
    if (!this.profile) {
      this.profile = classifier.profile;
      this.notes.push(`page classes: layout profile of ${this.kernel.version.release} from the BTF of the ${classifier.profile.data.btf.from}`);
    }
    this.notes.push(`page classes of ${guest.id}: kernel at physical 0x${placement.physicalBase.toString(16)} (memory route, kallsyms checked)`);
    this.opened.set(guest, { classifier, placement });
    return classifier;
  }
}
