/**
 * Scenarios: experiment definitions in JSON (scenarios/<name>.json), validated field by field so that a
 * mistake is reported with the field's path, e.g. `scenario cow-faults: field 'workload.params.rate' …`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError, errorMessage } from '../util/errors.ts';
import { projectRoot } from '../util/paths.ts';
import { APP_WORKLOADS, BUSYBOX_WORKLOADS, isAppWorkload, WORKLOAD_PARAMS, WORKLOADS, type WorkloadSpec } from '../vocabulary.ts';
import { isKernelImage, recipes } from '../images/recipes.ts';
import { isSystemImage, systemRecipes } from '../images/system-recipes.ts';
import { appWorkload } from '../workloads/app-workloads.ts';
import { strategyFactories } from '../../strategies/registry.ts';
import { BACKENDS, type BackendName } from '../backends/registry.ts';

export interface StrategySpec {
  name: string;
  /**
   * Names this strategy's rows in samples.csv, summary.csv and the console table; unique in a scenario.
   * Always set: the scenario's "label", else the name the strategy gives itself (e.g. semantic+rodata).
   */
  label: string;
  options: Record<string, unknown>;
}

/** What a strategy label may look like: it names rows in the results, so short and plain. */
export const STRATEGY_LABEL = /^[a-z0-9][a-z0-9+._-]*$/;

export interface Scenario {
  name: string;
  /** qemu (default): sharing accounted, strategies side by side; xen: sharing enforced, one strategy per run. */
  backend: BackendName;
  description: string;
  image: string;
  /** Guests booted together; several counts make a sweep (scale), each count booted and scored in turn. */
  guests: number[];
  /** One run per size: several sizes make a sweep (scan-overhead). */
  memoryMiB: number[];
  kaslr: boolean;
  workload: WorkloadSpec;
  /** Seconds between the boot and the first scan, so that the workload is past its start-up. */
  warmupS: number;
  durationS: number;
  tickS: number;
  strategies: StrategySpec[];
  repetitions: number;
  /** Pause all guests while strategies score them, so that every strategy sees the same memory. */
  pauseDuringScan: boolean;
  /**
   * Classify every guest frame each tick even when no strategy reads page classes, for "where sharing comes
   * from" (the saved_*_frames columns); that classification is billed to the instrument, not to a strategy.
   */
  attributeClasses: boolean;
  /** Use this System.map instead of the image's (to test that a wrong one is refused). */
  systemMap?: string;
  /**
   * 'together' (default): all strategies score the same guests, side by side. 'apart': every strategy gets
   * guests of its own, booted for it, one strategy after the other (order rotated each repetition) — for
   * mechanisms that change the guests (KSM, Xen) and for measuring what the guests feel (guest-overhead).
   */
  strategyGuests: 'together' | 'apart';
  /** The label of the strategy others are compared with (slowdown of the guests' workload, overhead.csv). */
  baseline?: string;
  /** QEMU CPU model per guest (guest i: cpuModels[i % length]); default the accelerator's model for all. */
  cpuModels?: string[];
  /**
   * A mixed fleet: guest i boots guestImages[i % length] (images of one kind, e.g. two kernel builds: "cloud" and
   * "cloud@6.1.0-56"); `image` is then guestImages[0]. Semantic sharing works within each build (a System.map
   * per build, each verified against its guests); content finds what all have in common.
   */
  guestImages?: string[];
}

/** Guests in one run: 64 × 256 MiB booted and were scored on a 2-core, 24 GiB host (docs/architecture.md, "Scale"). */
export const MAX_GUESTS = 64;

export const scenariosDir = path.join(projectRoot, 'scenarios');

const KNOWN_FIELDS = [
  '$comment',
  'name',
  'description',
  'backend',
  'image',
  'guests',
  'memoryMiB',
  'kaslr',
  'workload',
  'warmupS',
  'durationS',
  'tickS',
  'strategies',
  'repetitions',
  'pauseDuringScan',
  'attributeClasses',
  'systemMap',
  'strategyGuests',
  'baseline',
  'cpuModels',
  'guestImages',
];

class FieldError extends XmeError {}

function validator(scenarioName: string) {
  const fail = (field: string, problem: string): never => {
    throw new FieldError(`scenario ${scenarioName}: field '${field}' ${problem}`, 'see scenarios/README.md for the format');
  };
  const integer = (value: unknown, field: string, min: number, max: number): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      fail(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const positive = (value: unknown, field: string, max: number): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
      fail(field, `must be a number above 0 and at most ${max}, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const nonNegative = (value: unknown, field: string, max: number): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
      fail(field, `must be a number from 0 to ${max}, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const boolean = (value: unknown, field: string, fallback: boolean): boolean => {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') fail(field, `must be true or false, got ${JSON.stringify(value)}`);
    return value as boolean;
  };
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, 'must be an object');
    return value as Record<string, unknown>;
  };
  return { fail, integer, positive, nonNegative, boolean, object };
}

/** Validate parsed JSON as a scenario. `fallbackName` names it in errors when it has no valid name. */
export function parseScenario(json: unknown, fallbackName = 'scenario', baseDir = scenariosDir): Scenario {
  const v0 = validator(fallbackName);
  const raw = v0.object(json, '(root)');
  const name = typeof raw.name === 'string' && /^[\w.-]+$/.test(raw.name) ? raw.name : v0.fail('name', 'must be a name of letters, digits, . _ -');
  const v = validator(name);
  for (const field of Object.keys(raw)) {
    if (!KNOWN_FIELDS.includes(field)) v.fail(field, `is not a scenario field (known: ${KNOWN_FIELDS.slice(1).join(', ')})`);
  }

  const imageNames = `${[...Object.keys(recipes), ...Object.keys(systemRecipes)].join(', ')}, or a kernel image pinned to an ABI such as cloud@6.1.0-56`;
  const knownImage = (name: unknown): name is string => typeof name === 'string' && (isKernelImage(name) || isSystemImage(name));
  const guestImages = raw.guestImages === undefined ? undefined : parseGuestImages(raw.guestImages, raw.image, v, knownImage, imageNames);
  const image = guestImages?.[0] ?? raw.image ?? 'cloud';
  if (!knownImage(image)) v.fail('image', `must be one of ${imageNames}`);
  const systemImage = isSystemImage(image as string);

  const counts = Array.isArray(raw.guests) ? raw.guests : [raw.guests];
  if (counts.length === 0) v.fail('guests', 'must not be an empty list');
  const guests = counts.map((n, i) => v.integer(n, Array.isArray(raw.guests) ? `guests[${i}]` : 'guests', 1, MAX_GUESTS));
  if (new Set(guests).size !== guests.length) v.fail('guests', 'names a count twice');

  const memories = Array.isArray(raw.memoryMiB) ? raw.memoryMiB : [raw.memoryMiB ?? 256];
  if (memories.length === 0) v.fail('memoryMiB', 'must not be an empty list');
  const memoryMiB = memories.map((m, i) => v.integer(m, Array.isArray(raw.memoryMiB) ? `memoryMiB[${i}]` : 'memoryMiB', 64, 3072));

  // A kernel image runs the busybox workloads, a system image the application workloads (app-workloads.ts).
  const workloadRaw = v.object(raw.workload ?? { name: systemImage ? 'system-idle' : 'idle' }, 'workload');
  for (const field of Object.keys(workloadRaw)) if (!['name', 'params'].includes(field)) v.fail(`workload.${field}`, 'is not a workload field (name, params)');
  if (!(WORKLOADS as readonly unknown[]).includes(workloadRaw.name)) v.fail('workload.name', `must be one of ${WORKLOADS.join(', ')}`);
  const workloadName = workloadRaw.name as WorkloadSpec['name'];
  if (systemImage && !isAppWorkload(workloadName)) {
    v.fail(
      'workload.name',
      `is '${workloadName}', a busybox workload of kernel images, but image '${image}' is a system image: its workloads are ${APP_WORKLOADS.join(', ')}`,
    );
  }
  if (!systemImage && isAppWorkload(workloadName)) {
    v.fail(
      'workload.name',
      `is '${workloadName}', an application workload, which needs a system image (${Object.keys(systemRecipes).join(', ')}); image '${image}' is a kernel image, whose workloads are ${BUSYBOX_WORKLOADS.join(', ')}`,
    );
  }
  const allowedParams: readonly string[] = isAppWorkload(workloadName) ? appWorkload(workloadName).params : WORKLOAD_PARAMS;
  const params: NonNullable<WorkloadSpec['params']> = {};
  for (const [key, value] of Object.entries(v.object(workloadRaw.params ?? {}, 'workload.params'))) {
    if (!allowedParams.includes(key)) {
      v.fail(`workload.params.${key}`, `is not a workload parameter of ${workloadName} (${allowedParams.length ? allowedParams.join(', ') : 'it takes none'})`);
    }
    params[key as keyof typeof params] = v.integer(value, `workload.params.${key}`, 0, 1_000_000);
  }

  const durationS = v.positive(raw.durationS, 'durationS', 24 * 3600);
  const warmupS = v.nonNegative(raw.warmupS ?? 0, 'warmupS', 3600);
  const tickS = v.positive(raw.tickS ?? Math.min(5, durationS), 'tickS', durationS);

  if (!Array.isArray(raw.strategies) || raw.strategies.length === 0)
    v.fail('strategies', 'must be a non-empty list of strategy names or {name, label, options}');
  const knownStrategies = strategyFactories.map((f) => f.name);
  const labelUsedBy = new Map<string, number>();
  const strategies = (raw.strategies as unknown[]).map((entry, i): StrategySpec => {
    const field = `strategies[${i}]`;
    const spec = typeof entry === 'string' ? { name: entry } : v.object(entry, field);
    for (const key of Object.keys(spec))
      if (!['name', 'label', 'options'].includes(key)) v.fail(`${field}.${key}`, 'is not a strategy field (name, label, options)');
    if (typeof spec.name !== 'string' || !knownStrategies.includes(spec.name)) v.fail(`${field}.name`, `must be one of ${knownStrategies.join(', ')}`);
    if (spec.label !== undefined && (typeof spec.label !== 'string' || !STRATEGY_LABEL.test(spec.label))) {
      v.fail(`${field}.label`, `must be lower-case letters, digits and + . _ - (starting with a letter or digit), got ${JSON.stringify(spec.label)}`);
    }
    const options = v.object(spec.options ?? {}, `${field}.options`);
    const factory = strategyFactories.find((f) => f.name === spec.name)!;
    for (const key of Object.keys(options)) {
      if (!(key in factory.options)) v.fail(`${field}.options.${key}`, `is not an option of ${spec.name} (${Object.keys(factory.options).join(', ')})`);
    }
    let ownName = spec.name as string;
    try {
      ownName = factory.create(options).name;
    } catch (error) {
      v.fail(`${field}.options`, errorMessage(error));
    }
    // Without a label a strategy's rows carry the name it gives itself (semantic, semantic+rodata, content),
    // as they always have; two entries with one label would merge into one strategy with made-up repetitions.
    const label = (spec.label as string | undefined) ?? ownName;
    const first = labelUsedBy.get(label);
    if (first !== undefined) {
      v.fail(field, `has the label '${label}', already used by strategies[${first}]; give one of them a distinct "label"`);
    }
    labelUsedBy.set(label, i);
    return { name: spec.name as string, label, options };
  });

  const strategyGuests = raw.strategyGuests ?? 'together';
  if (strategyGuests !== 'together' && strategyGuests !== 'apart')
    v.fail('strategyGuests', `must be "together" or "apart", got ${JSON.stringify(strategyGuests)}`);
  const backend = raw.backend ?? 'qemu';
  if (!(BACKENDS as readonly unknown[]).includes(backend)) v.fail('backend', `must be one of ${BACKENDS.join(', ')}`);
  if (backend === 'xen' && systemImage) v.fail('image', `is the system image '${image}', which needs backend qemu (the Xen backend boots kernel images)`);
  if (backend === 'xen' && strategies.length !== 1 && strategyGuests !== 'apart') {
    v.fail(
      'strategies',
      'must name exactly one strategy with backend xen, unless strategyGuests is "apart": sharing there changes the guests, so strategies cannot be scored side by side',
    );
  }
  const ksmCount = strategies.filter((s) => s.name === 'ksm').length;
  if (ksmCount > 1 && strategyGuests === 'together')
    v.fail('strategies', 'may name ksm only once with strategyGuests "together": KSM is one host-wide mechanism');
  if (ksmCount > 0 && backend !== 'qemu') v.fail('strategies', "names ksm, which needs backend qemu (Linux KSM merges QEMU's anonymous guest RAM)");
  let cpuModels: string[] | undefined;
  if (raw.cpuModels !== undefined) {
    if (!Array.isArray(raw.cpuModels) || raw.cpuModels.length === 0)
      v.fail('cpuModels', 'must be a non-empty list of QEMU CPU model names (qemu-system-x86_64 -cpu help)');
    cpuModels = (raw.cpuModels as unknown[]).map((model, i) =>
      typeof model === 'string' && /^[A-Za-z0-9][\w.+-]*(,[\w.+=-]+)*$/.test(model)
        ? model
        : v.fail(`cpuModels[${i}]`, `must be a QEMU CPU model name such as qemu64, Nehalem or max, got ${JSON.stringify(model)}`),
    );
    if (backend !== 'qemu') v.fail('cpuModels', 'is only for backend qemu (Xen guests run on the host CPU)');
  }
  if (raw.baseline !== undefined && !strategies.some((s) => s.label === raw.baseline)) {
    v.fail('baseline', `must be the label of one of the strategies (${strategies.map((s) => s.label).join(', ')}), got ${JSON.stringify(raw.baseline)}`);
  }

  if (guestImages && backend !== 'qemu') v.fail('guestImages', 'is only for backend qemu (the Xen backend boots one kernel image for all guests)');
  if (guestImages && new Set(guestImages).size > 1) {
    // The page classifier reads every guest with the run's one kernel build (tick-page-classes.ts).
    const classReader = strategies.findIndex((spec) => strategyFactories.find((f) => f.name === spec.name)!.create(spec.options).readsPageClasses);
    if (classReader >= 0) {
      v.fail(
        `strategies[${classReader}]`,
        `is ${strategies[classReader]!.name}, which reads page classes with one kernel build's layout; a mixed fleet (guestImages) boots several builds`,
      );
    }
  }

  let systemMap: string | undefined;
  if (raw.systemMap !== undefined) {
    if (guestImages) v.fail('systemMap', "cannot be combined with guestImages: each guest's kernel is checked against its own image's System.map");
    if (typeof raw.systemMap !== 'string' || !raw.systemMap) v.fail('systemMap', 'must be a file path');
    systemMap = path.resolve(baseDir, raw.systemMap as string);
    if (!fs.existsSync(systemMap)) v.fail('systemMap', `names a file that does not exist: ${systemMap}`);
  }

  return {
    name,
    backend: backend as BackendName,
    description: typeof raw.description === 'string' ? raw.description : '',
    image: image as string,
    guests,
    memoryMiB,
    kaslr: v.boolean(raw.kaslr, 'kaslr', false),
    workload: { name: workloadName, params },
    warmupS,
    durationS,
    tickS,
    strategies,
    repetitions: v.integer(raw.repetitions ?? 1, 'repetitions', 1, 1000),
    pauseDuringScan: v.boolean(raw.pauseDuringScan, 'pauseDuringScan', true),
    attributeClasses: v.boolean(raw.attributeClasses, 'attributeClasses', false),
    ...(systemMap ? { systemMap } : {}),
    strategyGuests: strategyGuests as Scenario['strategyGuests'],
    ...(raw.baseline !== undefined ? { baseline: raw.baseline as string } : {}),
    ...(cpuModels ? { cpuModels } : {}),
    ...(guestImages ? { guestImages } : {}),
  };
}

/** guestImages: a non-empty list of known images of one kind; `image`, if given too, must be its first. */
function parseGuestImages(
  value: unknown,
  image: unknown,
  v: ReturnType<typeof validator>,
  knownImage: (name: unknown) => name is string,
  imageNames: string,
): string[] {
  if (!Array.isArray(value) || value.length === 0) v.fail('guestImages', 'must be a non-empty list of image names (guest i boots guestImages[i % length])');
  const names = (value as unknown[]).map((name, i) =>
    knownImage(name) ? name : v.fail(`guestImages[${i}]`, `must be one of ${imageNames}, got ${JSON.stringify(name)}`),
  );
  const kindOf = (name: string) => (isSystemImage(name) ? 'system' : 'kernel');
  names.forEach((name, i) => {
    if (kindOf(name) !== kindOf(names[0]!)) {
      v.fail(
        `guestImages[${i}]`,
        `is the ${kindOf(name)} image '${name}', but guestImages[0] '${names[0]}' is a ${kindOf(names[0]!)} image: a fleet boots images of one kind`,
      );
    }
  });
  if (image !== undefined && image !== names[0]) {
    v.fail('image', `must be left out, or be guestImages[0] ('${names[0]}'), when guestImages is given: guest i boots guestImages[i % length]`);
  }
  return names;
}

/** Names of the scenarios shipped in scenarios/. */
export function listScenarios(): string[] {
  return fs
    .readdirSync(scenariosDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Load a scenario by name (scenarios/<name>.json) or by path. */
export function loadScenario(nameOrPath: string): Scenario {
  const byName = path.join(scenariosDir, `${nameOrPath}.json`);
  const file = fs.existsSync(byName) ? byName : nameOrPath;
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new XmeError(`no scenario '${nameOrPath}'`, `shipped scenarios: ${listScenarios().join(', ')}; or give a path to a .json file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new XmeError(`scenario file ${file} is not valid JSON: ${errorMessage(error)}`);
  }
  return parseScenario(json, path.basename(file, '.json'), path.dirname(path.resolve(file)));
}

export interface ScenarioOverrides {
  backend?: BackendName;
  strategies?: string[];
  kaslr?: boolean;
  repetitions?: number;
  durationS?: number;
  tickS?: number;
  guests?: number[];
  memoryMiB?: number[];
  systemMap?: string;
}

/** Apply command-line overrides and validate the result again. */
export function withOverrides(scenario: Scenario, overrides: ScenarioOverrides): Scenario {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  if (Object.keys(defined).length === 0) return scenario;
  const merged: Record<string, unknown> = { ...scenario, ...defined };
  if (overrides.strategies) merged.strategies = overrides.strategies;
  if (defined.durationS !== undefined && defined.tickS === undefined) merged.tickS = Math.min(scenario.tickS, overrides.durationS!);
  return parseScenario({ ...merged, workload: scenario.workload }, scenario.name, process.cwd());
}
