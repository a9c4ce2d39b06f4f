/**
 * Linux KSM as a real peer: the kernel's content-based sharing, merging this run's guests for real while
 * the other strategies are scored on the same guests. xme proposes nothing here: for the repetition it turns
 * KSM on with the scenario's settings (harness/host/ksm.ts saves and always restores the host's), gives the
 * guests anonymous mergeable RAM (the only memory KSM merges), and its ledger observes what the kernel did
 * (harness/sharing/ksm-ledger.ts). KSM runs continuously, so its figures cover the whole interval between
 * ticks, not one scan; its CPU is ksmd's.
 */
import type { Guest } from '../harness/backends/types.ts';
import { KsmSession, parseKsmSettings, type KsmSettings } from '../harness/host/ksm.ts';
import { KsmLedger } from '../harness/sharing/ksm-ledger.ts';
import { mergeableProcesses } from '../harness/host/mergeable-processes.ts';
import type { Ledger } from '../harness/sharing/ledger.ts';
import type { ScanResult, Strategy, StrategyFactory, StrategyLifecycle } from './types.ts';

export class KsmStrategy implements Strategy {
  readonly name = 'ksm';
  readonly guestRam = 'anonymous-mergeable';
  readonly declaredMetrics = {};
  readonly readsGuestMemory = false;
  private session: KsmSession | undefined;

  constructor(readonly settings: KsmSettings) {}

  describe(): string {
    const s = this.settings;
    return `Linux KSM (pages_to_scan ${s.pagesToScan}, sleep_millisecs ${s.sleepMillisecs}, use_zero_pages ${s.useZeroPages ? 1 : 0}, smart_scan ${s.smartScan ? 1 : 0}, advisor_mode ${s.advisorMode})`;
  }

  createLedger(label: string, guests: readonly Guest[]): Ledger {
    return new KsmLedger(label, guests);
  }

  /** KSM on with this scenario's settings; the host's are saved first and restored by end() or any exit. */
  begin(lifecycle: StrategyLifecycle): void {
    this.session = KsmSession.acquire(this.settings, { onNotice: lifecycle.notice });
    const saved = Object.entries(this.session.saved)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    lifecycle.note(`ksm: ${this.describe()}; host settings before the run: ${saved}`);
    lifecycle.say(`KSM on: ${this.describe()}; the host's settings (${saved}) are restored when the run ends`);
    // KSM is host-wide: say which other processes it scans too, and so counts in cow_ksm and ksmd's CPU.
    const own = new Set(lifecycle.guests.map((g) => g.hostProcess?.memory()?.pid).filter((pid): pid is number => pid !== undefined));
    const others = mergeableProcesses(own);
    if (others.length) {
      lifecycle.notice(
        `KSM also scans ${others.length} process(es) outside this run (${others.map((p) => `${p.command} ${p.pid}: ${Math.round(p.mergeableKiB / 1024)} MiB`).join(', ')}): ` +
          "ksmd's CPU, pages_scanned and cow_ksm are host-wide and include them; the per-guest figures (pagemap, ksm_stat) do not",
      );
    }
  }

  end(): void {
    this.session?.release();
    this.session = undefined;
  }

  /** The kernel merges on its own; a tick only observes (in the ledger). */
  async scan(): Promise<ScanResult> {
    return { groups: [], cost: { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 }, metrics: {}, notes: [] };
  }
}

export const ksmFactory: StrategyFactory = {
  name: 'ksm',
  summary: 'Linux KSM merging the guests for real (anonymous RAM, ksmd); xme observes pagemap, ksm_stat and cow_ksm',
  options: {
    pages_to_scan: 'pages ksmd scans per wake-up (default 5000)',
    sleep_millisecs: 'ms ksmd sleeps between wake-ups (default 20)',
    use_zero_pages: 'boolean, default true: merge all-zero pages into the kernel zero page',
    smart_scan: 'boolean, default true: skip pages that did not merge in earlier scans (Linux 6.7+)',
    advisor_mode: '"none" (default) or "scan-time": let the kernel tune pages_to_scan',
  },
  create(options) {
    return new KsmStrategy(parseKsmSettings(options, (name) => `strategy ksm: option '${name}'`));
  },
};
