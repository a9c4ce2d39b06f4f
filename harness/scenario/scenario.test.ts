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

// biome-ignore lint/suspicious/noExplicitAny: the tests patch any field of a scenario read from JSON
function broken(patch: (s: Record<string, any>) => void) {
  const copy = JSON.parse(JSON.stringify(valid));
  patch(copy);
  return () => parseScenario(copy);
}

describe('scenario validation', () => {
  it('fills defaults', () => {
    const scenario = parseScenario(valid);
    expect(scenario).toMatchObject({
      image: 'cloud',
      kaslr: false,
      repetitions: 1,
      pauseDuringScan: true,
      attributeClasses: false,
      guests: [2],
      memoryMiB: [128],
      strategyGuests: 'together',
    });
    expect(parseScenario({ ...valid, attributeClasses: true, guests: [2, 8] })).toMatchObject({ attributeClasses: true, guests: [2, 8] });
    expect(scenario.baseline).toBeUndefined();
    expect(scenario.strategies).toEqual([
      { name: 'semantic', label: 'semantic', options: {} },
      { name: 'content', label: 'content', options: { zeroPages: false } },
    ]);
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
    expect(broken((s) => (s.attributeClasses = 'yes'))).toThrow(/field 'attributeClasses' must be true or false/);
    expect(broken((s) => (s.guests = [2, 2]))).toThrow(/field 'guests' names a count twice/);
    expect(broken((s) => (s.guests = []))).toThrow(/field 'guests' must not be an empty list/);
    expect(broken((s) => (s.guests = [2, 65]))).toThrow(/field 'guests\[1\]' must be an integer from 1 to 64/);
    expect(broken((s) => (s.warmupS = -1))).toThrow(/field 'warmupS' must be a number from 0/);
    expect(broken((s) => (s.colour = 'red'))).toThrow(/field 'colour' is not a scenario field/);
    expect(broken((s) => (s.image = 'windows'))).toThrow(/field 'image'/);
    expect(broken((s) => (s.systemMap = '/nonexistent/System.map'))).toThrow(/field 'systemMap' names a file that does not exist/);
    expect(() => parseScenario([])).toThrow(/field '\(root\)' must be an object/);
  });

  it('application workloads need a system image and busybox workloads a kernel image, each naming the field', () => {
    const real = { ...valid, image: 'debian-system', memoryMiB: 512, workload: { name: 'nginx', params: { interval_ms: 5000 } } };
    expect(parseScenario(real)).toMatchObject({ image: 'debian-system', workload: { name: 'nginx', params: { interval_ms: 5000 } } });
    // Without a workload, a system image's guests run nothing more than their own services.
    expect(parseScenario({ ...real, workload: undefined }).workload.name).toBe('system-idle');
    expect(parseScenario({ ...valid, workload: undefined }).workload.name).toBe('idle');
    expect(() => parseScenario({ ...valid, workload: { name: 'pgbench' } })).toThrow(
      /field 'workload.name' is 'pgbench', an application workload, which needs a system image \(debian-system\); image 'cloud' is a kernel image/,
    );
    expect(() => parseScenario({ ...real, workload: { name: 'memchurn' } })).toThrow(
      /field 'workload.name' is 'memchurn', a busybox workload of kernel images, but image 'debian-system' is a system image: its workloads are nginx, redis, pgbench, build, system-idle/,
    );
    // Each application takes only its own parameters.
    expect(() => parseScenario({ ...real, workload: { name: 'nginx', params: { rate: 10 } } })).toThrow(
      /field 'workload.params.rate' is not a workload parameter of nginx \(mib, interval_ms\)/,
    );
    expect(() => parseScenario({ ...real, workload: { name: 'redis', params: { mib: 1 } } })).toThrow(
      /field 'workload.params.mib' is not a workload parameter of redis \(it takes none\)/,
    );
    expect(() => parseScenario({ ...real, backend: 'xen', strategies: ['content'] })).toThrow(
      /field 'image' is the system image 'debian-system', which needs backend qemu/,
    );
  });

  it('labels every strategy: its own label, else the name the strategy gives itself', () => {
    const scenario = parseScenario({
      ...valid,
      strategies: [
        'semantic',
        { name: 'semantic', options: { rodata: true } },
        { name: 'content', label: 'content-nozero', options: { zeroPages: false } },
        { name: 'content', label: 'content+zero_2.v-1' },
      ],
    });
    expect(scenario.strategies.map((s) => [s.name, s.label])).toEqual([
      ['semantic', 'semantic'],
      ['semantic', 'semantic+rodata'],
      ['content', 'content-nozero'],
      ['content', 'content+zero_2.v-1'],
    ]);
    expect(scenario.strategies[2]!.options).toEqual({ zeroPages: false });
  });

  it('refuses two strategies with one label, naming both', () => {
    const twice = (strategies: unknown[]) => () => parseScenario({ ...valid, strategies });
    expect(twice(['semantic', 'semantic'])).toThrow(
      `scenario x: field 'strategies[1]' has the label 'semantic', already used by strategies[0]; give one of them a distinct "label"`,
    );
    expect(twice(['content', { name: 'content', options: { zeroPages: false } }])).toThrow(
      /field 'strategies\[1\]' has the label 'content', already used by strategies\[0\]/,
    );
    expect(twice(['semantic', 'content', { name: 'content', label: 'semantic' }])).toThrow(
      /field 'strategies\[2\]' has the label 'semantic', already used by strategies\[0\]/,
    );
    // an explicit label may not take the name another strategy has by default either
    expect(
      twice([
        { name: 'content', label: 'semantic+rodata' },
        { name: 'semantic', options: { rodata: true } },
      ]),
    ).toThrow(/field 'strategies\[1\]' has the label 'semantic\+rodata', already used by strategies\[0\]/);
    expect(
      twice([
        { name: 'content', label: 'a' },
        { name: 'content', label: 'b' },
      ]),
    ).not.toThrow();
  });

  it('checks the form of a label', () => {
    for (const label of ['', 'Semantic', '-x', '+x', 'a b', 'a/b', 'é', 7, null]) {
      expect(broken((s) => (s.strategies[1].label = label))).toThrow(/field 'strategies\[1\].label' must be lower-case letters, digits and \+ \. _ -/);
    }
    expect(broken((s) => (s.strategies[1].colour = 'red'))).toThrow(/field 'strategies\[1\].colour' is not a strategy field \(name, label, options\)/);
  });

  it('checks where strategies run, the baseline, and where KSM may run', () => {
    expect(() => broken((s) => (s.strategyGuests = 'separate'))()).toThrow(/field 'strategyGuests' must be "together" or "apart"/);
    expect(() => broken((s) => (s.baseline = 'none'))()).toThrow(/field 'baseline' must be the label of one of the strategies \(semantic, content\)/);
    expect(() => broken((s) => (s.strategies = ['ksm', { name: 'ksm', label: 'ksm2' }]))()).toThrow(/may name ksm only once/);
    expect(() => broken((s) => ((s.backend = 'xen'), (s.strategies = ['ksm'])))()).toThrow(/needs backend qemu/);
    expect(() => broken((s) => (s.strategies = [{ name: 'ksm', options: { pages_to_scan: -1 } }]))()).toThrow(/strategies\[0\]\.options.*pages_to_scan/);
    const apart = parseScenario({ ...valid, strategies: ['none', 'ksm'], strategyGuests: 'apart', baseline: 'none' });
    expect(apart).toMatchObject({ strategyGuests: 'apart', baseline: 'none' });
    // Xen runs several strategies only on guests of their own: sharing there changes the guests.
    expect(() => parseScenario({ ...valid, backend: 'xen' })).toThrow(/exactly one strategy with backend xen, unless strategyGuests is "apart"/);
    expect(parseScenario({ ...valid, backend: 'xen', strategyGuests: 'apart' }).strategies).toHaveLength(2);
  });

  it('gives guests CPU models only on QEMU, by name', () => {
    expect(parseScenario({ ...valid, cpuModels: ['qemu64', 'max'] }).cpuModels).toEqual(['qemu64', 'max']);
    expect(parseScenario(valid).cpuModels).toBeUndefined();
    expect(() => broken((s) => (s.cpuModels = []))()).toThrow(/field 'cpuModels' must be a non-empty list/);
    expect(() => broken((s) => (s.cpuModels = ['qemu64', 'x y']))()).toThrow(/field 'cpuModels\[1\]' must be a QEMU CPU model name/);
    expect(() => parseScenario({ ...valid, backend: 'xen', strategyGuests: 'apart', cpuModels: ['max'] })).toThrow(/cpuModels' is only for backend qemu/);
  });

  it('gives each guest its own image in a mixed fleet, naming the field of every mistake', () => {
    const fleet = parseScenario({ ...valid, guests: 4, guestImages: ['cloud', 'cloud@6.1.0-56'] });
    expect(fleet).toMatchObject({ image: 'cloud', guestImages: ['cloud', 'cloud@6.1.0-56'] });
    expect(parseScenario({ ...valid, image: 'cloud@6.1.0-56' }).image).toBe('cloud@6.1.0-56'); // a pinned kernel image alone
    expect(broken((s) => (s.guestImages = []))).toThrow(/field 'guestImages' must be a non-empty list of image names/);
    expect(broken((s) => (s.guestImages = ['cloud', 'cloud@6.1']))).toThrow(/field 'guestImages\[1\]' must be one of cloud, generic, .*got "cloud@6.1"/);
    expect(broken((s) => (s.guestImages = ['cloud', 'debian-system']))).toThrow(
      /field 'guestImages\[1\]' is the system image 'debian-system', but guestImages\[0\] 'cloud' is a kernel image/,
    );
    expect(broken((s) => Object.assign(s, { image: 'generic', guestImages: ['cloud', 'generic'] }))).toThrow(
      /field 'image' must be left out, or be guestImages\[0\]/,
    );
    expect(broken((s) => Object.assign(s, { guestImages: ['cloud', 'generic'], systemMap: 'x' }))).toThrow(
      /field 'systemMap' cannot be combined with guestImages/,
    );
    expect(broken((s) => Object.assign(s, { guestImages: ['cloud', 'generic'], backend: 'xen', strategies: ['semantic'] }))).toThrow(
      /field 'guestImages' is only for backend qemu/,
    );
    expect(broken((s) => Object.assign(s, { guestImages: ['cloud', 'generic'], strategies: ['semantic', 'semantic-pagecache'] }))).toThrow(
      /field 'strategies\[1\]' is semantic-pagecache, which reads page classes with one kernel build's layout/,
    );
    expect(broken((s) => (s.guestImages = ['cloud', 'cloud']))).not.toThrow(); // one build: the classifier works
  });

  it('loads every shipped scenario', () => {
    const names = listScenarios();
    expect(names).toEqual(expect.arrayContaining(['smoke', 'thesis-kernel-code', 'cow-faults', 'scan-overhead']));
    for (const name of names) expect(loadScenario(name).name).toBe(name);
    expect(loadScenario('scan-overhead').memoryMiB).toEqual([128, 256, 512, 1024]);
  });

  it('says which scenarios exist when one is unknown', () => {
    expect(() => loadScenario('nope')).toThrow(/no scenario 'nope'/);
  });

  it('applies command-line overrides and validates them', () => {
    const scenario = parseScenario(valid);
    expect(withOverrides(scenario, { kaslr: true }).kaslr).toBe(true);
    expect(withOverrides(scenario, { durationS: 4 })).toMatchObject({ durationS: 4, tickS: 4 });
    expect(() => withOverrides(scenario, { guests: [0] })).toThrow(/field 'guests\[0\]'/);
    expect(withOverrides(scenario, {})).toBe(scenario);
  });

  it('keeps labels through overrides and validates --strategies like the file', () => {
    const labelled = parseScenario({
      ...valid,
      strategies: [
        { name: 'content', label: 'c1' },
        { name: 'content', label: 'c2', options: { zeroPages: false } },
      ],
    });
    expect(withOverrides(labelled, { kaslr: true }).strategies).toEqual(labelled.strategies);
    const shipped = loadScenario('thesis-kernel-code');
    expect(withOverrides(shipped, { guests: [2] }).strategies).toEqual(shipped.strategies);

    const scenario = parseScenario(valid);
    expect(withOverrides(scenario, { strategies: ['content'] }).strategies).toEqual([{ name: 'content', label: 'content', options: {} }]);
    expect(() => withOverrides(scenario, { strategies: ['semantic', 'semantic'] })).toThrow(
      /field 'strategies\[1\]' has the label 'semantic', already used by strategies\[0\]/,
    );
    expect(() => withOverrides(scenario, { strategies: ['magic'] })).toThrow(/field 'strategies\[0\].name' must be one of/);
  });
});
