/**
 * Where sharing comes from, at every tick that has page classes (harness/introspection/saved-by-class.ts): after
 * every strategy has scored the tick, guests still paused, each strategy's frames saved by page class, and for
 * each strategy the part of the content strategy's savings its own ledger also holds (shared or reclaimed); and,
 * per guest, the classifier's counts beside the kernel's own counters (introspection/counter-check.ts).
 *
 * The classes are the tick's, taken before any strategy scored (tick-page-classes.ts): the pause holds them
 * true until here. Billing: this bookkeeping is xme's instrument, never a strategy's mechanism — nothing a real
 * system sharing pages would do — so its thread CPU (and, in a run where no strategy reads classes and the
 * classification was made for attribution only, that classification's) is added to every strategy's
 * instrument_cpu_ms of the tick and shown as attribution_cpu_ms.
 */
import type { Guest } from '../backends/types.ts';
import { COUNTER_TOLERANCE, counterCheck, disagreements, type CounterCheck } from '../introspection/counter-check.ts';
import type { PageClasses } from '../introspection/page-classes.ts';
import { savedAlsoBy, savedByClass, savedKeys, savingPages, type SavedByClass } from '../introspection/saved-by-class.ts';
import type { StrategySample, TickSample } from '../results/tick-sample.ts';
import type { Ledger } from '../sharing/ledger.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';

/** The strategy whose savings the others are measured against: content-based sharing, the full scan. */
export const REFERENCE_STRATEGY = 'content';

export interface TrackAttribution {
  /** Undefined where the ledger cannot say which pages share a frame (Xen's counters). */
  savedByClass: SavedByClass | undefined;
  /** frames_saved the classes cannot place (KSM's zero pages: no guest frame backs them). */
  unlocated: number | undefined;
  /** Of the reference strategy's saved pages this tick, those this strategy's ledger also saves or reclaims. */
  contentSavedFound: number | undefined;
}

export interface TickAttribution {
  byLabel: Map<string, TrackAttribution>;
  /** Per guest, in the order of the classes; undefined where the guest's counters were not read. */
  counters: (CounterCheck | undefined)[];
}

export interface AttributedTrack {
  label: string;
  name: string;
  ledger: Pick<Ledger, 'sharedFrames' | 'reclaimedFrames'>;
  /** The ledger's frames_saved this tick (its stats, as the sample says). */
  framesSaved: number;
}

export function attributeTick(tracks: readonly AttributedTrack[], guests: readonly Guest[], classes: readonly PageClasses[]): TickAttribution {
  const guestPages = guests.map((g) => g.memoryPages);
  const reference = tracks.find((t) => t.name === REFERENCE_STRATEGY && t.ledger.sharedFrames);
  // The reference's saved pages once, tested against each other ledger.
  const referenceSaved = reference ? savedKeys(reference.ledger.sharedFrames!()) : undefined;
  const byLabel = new Map<string, TrackAttribution>();
  for (const track of tracks) {
    const frames = track.ledger.sharedFrames?.();
    if (!frames) {
      byLabel.set(track.label, { savedByClass: undefined, unlocated: undefined, contentSavedFound: undefined });
      continue;
    }
    const members = [...frames];
    const byClass = savedByClass(members, classes);
    const located = Object.values(byClass).reduce((a, b) => a + b, 0);
    let contentSavedFound: number | undefined;
    if (referenceSaved && reference !== track) {
      const mine = savingPages(members, track.ledger.reclaimedFrames?.(), guestPages);
      contentSavedFound = savedAlsoBy(referenceSaved, mine);
    }
    byLabel.set(track.label, { savedByClass: byClass, unlocated: track.framesSaved - located, contentSavedFound });
  }
  return { byLabel, counters: classes.map(counterCheck) };
}

/** One strategy's samples of a tick, as scoreTick made them: its total first, then one per guest. */
export interface ScoredTrack extends Omit<AttributedTrack, 'framesSaved'> {
  samples: readonly [StrategySample, ...TickSample[]];
}

/**
 * Attribution for the tick loop, one per repetition: fills the tick's samples in place before they are emitted
 * and warns once per guest and counter when the classes disagree with the kernel beyond COUNTER_TOLERANCE.
 */
export class TickAttributor {
  private readonly warned = new Set<string>();

  constructor(private readonly warn: (text: string) => void) {}

  /**
   * `classifyOnlyCpuMs`: the tick's classification when it was made for attribution only (no strategy reads
   * classes, so none was billed it); it is the instrument's, with this bookkeeping. Returns the CPU added to
   * every strategy's instrument_cpu_ms.
   */
  apply(tick: number, scored: readonly ScoredTrack[], guests: readonly Guest[], classes: readonly PageClasses[], classifyOnlyCpuMs: number): number {
    const start = threadCpuNs();
    const { byLabel, counters } = attributeTick(
      scored.map(({ label, name, ledger, samples }) => ({ label, name, ledger, framesSaved: samples[0].framesSaved })),
      guests,
      classes,
    );
    const cpuMs = Number(threadCpuNs() - start) / 1e6 + classifyOnlyCpuMs;
    for (const { label, samples } of scored) {
      const [total, ...perGuest] = samples;
      const found = byLabel.get(label);
      if (found?.savedByClass) {
        total.savedByClass = found.savedByClass;
        total.savedUnlocated = found.unlocated;
      }
      if (found?.contentSavedFound !== undefined) total.contentSavedFound = found.contentSavedFound;
      total.cost.attributionCpuMs = cpuMs;
      total.cost.instrumentCpuMs += cpuMs;
      for (const sample of perGuest) {
        if (sample.scope !== 'guest') continue;
        const index = guests.findIndex((g) => g.id === sample.guest);
        if (index >= 0 && counters[index]) sample.counters = counters[index];
      }
    }
    counters.forEach((check, g) => {
      for (const line of check ? disagreements(check) : []) {
        const name = line.slice(0, line.indexOf(':'));
        const key = `${guests[g]!.id}/${name}`;
        if (this.warned.has(key)) continue;
        this.warned.add(key);
        this.warn(
          `page classes of ${guests[g]!.id} disagree with the kernel's own counters at tick ${tick}: ${line}, beyond ${COUNTER_TOLERANCE} (samples.csv classes_* and kernel_* columns; warned once per guest and counter)`,
        );
      }
    });
    return cpuMs;
  }
}
