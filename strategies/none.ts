/**
 * No sharing at all: the baseline of overhead experiments. It proposes nothing and reads nothing, so guests
 * scored by it run as they would without any sharing mechanism (with the same pauses, if the scenario pauses).
 */
import type { ScanResult, Strategy, StrategyFactory } from './types.ts';

export class NoSharingStrategy implements Strategy {
  readonly name = 'none';
  readonly declaredMetrics = {};
  readonly readsGuestMemory = false;

  describe(): string {
    return 'no sharing (baseline)';
  }

  async scan(): Promise<ScanResult> {
    return { groups: [], cost: { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 }, metrics: {}, notes: [] };
  }
}

export const noneFactory: StrategyFactory = {
  name: 'none',
  summary: 'no sharing: the baseline for guest-overhead runs (proposes nothing, reads nothing)',
  options: {},
  create() {
    return new NoSharingStrategy();
  },
};
