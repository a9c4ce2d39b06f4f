import { describe, expect, it } from 'vitest';
import { listScenarios, loadScenario, parseScenario, withOverrides } from './scenario.ts';

const valid = {
  name: 'x',
  guests: 2,
  memoryMiB: 128,
  workload: { name: 'memchurn', params: { mib: 8, rate: 100 } },
  durationS: 10,
  tickS: 5,
  strategies: ['semantic', { name: 'content', options: { zeroPages: false } }],
};

function broken(patch: (s: Record<string, any>) => void) {
  const copy = JSON.parse(JSON.stringify(valid));
  patch(copy);
  return () => parseScenario(copy);
}

describe('scenario validation', () => {
  it('fills defaults', () => {
    const scenario = parseScenario(valid);
    expect(scenario).toMatchObject({ image: 'cloud', kaslr: false, repetitions: 1, pauseDuringScan: true, memoryMiB: [128] });
    expect(scenario.strategies).toEqual([{ name: 'semantic', options: {} }, { name: 'content', options: { zeroPages: false } }]);
  });

  it('names the field of every mistake', () => {
    expect(broken((s) => (s.guests = 0))).toThrow(/scenario x: field 'guests' must be an integer from 1 to 64, got 0/);
    expect(broken((s) => (s.memoryMiB = [128, 'big']))).toThrow(/field 'memoryMiB\[1\]'/);
    expect(broken((s) => (s.workload.name = 'dance'))).toThrow(/field 'workload.name' must be one of idle/);
    expect(broken((s) => (s.workload.params.rate = -5))).toThrow(/field 'workload.params.rate'/);
    expect(broken((s) => (s.workload.params.speed = 1))).toThrow(/field 'workload.params.speed' is not a workload parameter/);
    expect(broken((s) => (s.strategies = []))).toThrow(/field 'strategies' must be a non-empty list/);
    expect(broken((s) => (s.strategies[1].name = 'magic'))).toThrow(/field 'strategies\[1\].name' must be one of semantic, content/);
    expect(broken((s) => (s.strategies[1].options = { rodata: true }))).toThrow(/field 'strategies\[1\].options.rodata' is not an option of content/);
    expect(broken((s) => (s.strategies[0] = { name: 'semantic', options: { rodata: 'yes' } }))).toThrow(/field 'strategies\[0\].options'.*rodata/);
    expect(broken((s) => (s.tickS = 60))).toThrow(/field 'tickS' must be a number above 0 and at most 10/);
    expect(broken((s) => (s.durationS = undefined))).toThrow(/field 'durationS'/);
    expect(broken((s) => (s.kaslr = 'on'))).toThrow(/field 'kaslr' must be true or false/);
    expect(broken((s) => (s.warmupS = -1))).toThrow(/field 'warmupS' must be a number from 0/);
    expect(broken((s) => (s.colour = 'red'))).toThrow(/field 'colour' is not a scenario field/);
    expect(broken((s) => (s.image = 'windows'))).toThrow(/field 'image'/);
    expect(broken((s) => (s.systemMap = '/nonexistent/System.map'))).toThrow(/field 'systemMap' names a file that does not exist/);
    expect(() => parseScenario([])).toThrow(/field '\(root\)' must be an object/);
  });

  it('loads every shipped scenario', () => {
    const names = listScenarios();
    expect(names).toEqual(expect.arrayContaining(['smoke', 'thesis-kernel-code', 'cow-faults', 'scan-overhead']));
    for (const name of names) expect(loadScenario(name).name).toBe(name);
    expect(loadScenario('scan-overhead').memoryMiB).toEqual([128, 256, 512]);
  });

  it('says which scenarios exist when one is unknown', () => {
    expect(() => loadScenario('nope')).toThrow(/no scenario 'nope'/);
  });

  it('applies command-line overrides and validates them', () => {
    const scenario = parseScenario(valid);
    expect(withOverrides(scenario, { kaslr: true }).kaslr).toBe(true);
    expect(withOverrides(scenario, { durationS: 4 })).toMatchObject({ durationS: 4, tickS: 4 });
    expect(() => withOverrides(scenario, { guests: 0 })).toThrow(/field 'guests'/);
    expect(withOverrides(scenario, {})).toBe(scenario);
  });
});
