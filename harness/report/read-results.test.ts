import { describe, expect, it } from 'vitest';
import { runInfo } from './read-results.ts';

const record = (scenario: Record<string, unknown>) => ({
  runId: 'r',
  status: 'completed',
  scenarioName: 'x',
  raw: {},
  scenario,
  kernel: { version: { release: '6.1.0-57-cloud-amd64' } },
});

describe('the run table of the report', () => {
  it("names a mixed fleet's images instead of the one kernel run.json records", () => {
    expect(runInfo(record({ guests: [4], guestImages: ['cloud', 'cloud@6.1.0-56'] })).kernel).toBe(
      'mixed fleet: cloud, cloud@6.1.0-56 (guest i: image i mod 2)',
    );
    expect(runInfo(record({ guests: [4] })).kernel).toBe('6.1.0-57-cloud-amd64');
    expect(runInfo(record({ guests: [4], guestImages: ['cloud'] })).kernel).toBe('6.1.0-57-cloud-amd64');
  });
});
