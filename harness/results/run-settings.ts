/**
 * The settings a run was made with, from its run.json, as short texts a person can compare: what `xme
 * compare` puts in its header when two runs differ in anything but the strategies (a nokaslr run against a
 * KASLR run is not a like-for-like comparison, and the numbers alone do not say so).
 */
import { object, type StoredRunRecord } from './run-record.ts';

/** One setting: its name and how to read it from a record ('not recorded' when an older run.json lacks it). */
interface Setting {
  name: string;
  read: (record: StoredRunRecord) => string | undefined;
}

const text = (value: unknown): string | undefined => {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
};

const scenarioOf = (record: StoredRunRecord) => object(record.scenario);

function workload(record: StoredRunRecord): string | undefined {
  const spec = object(scenarioOf(record).workload);
  const name = text(spec.name);
  if (!name) return undefined;
  const params = Object.entries(object(spec.params)).map(([k, v]) => `${k}=${text(v) ?? '?'}`);
  return params.length ? `${name} (${params.join(', ')})` : name;
}

function image(record: StoredRunRecord): string | undefined {
  const manifest = object(record.image);
  const name = text(manifest.name);
  if (!name) return undefined;
  const vmlinuz = text(object(object(manifest.files).vmlinuz).sha256);
  return `${name}, ${text(manifest.kernelRelease) ?? 'kernel not recorded'}${vmlinuz ? `, vmlinuz ${vmlinuz.slice(0, 12)}` : ''}`;
}

function harness(record: StoredRunRecord): string | undefined {
  const info = object(record.harness);
  const commit = text(info.gitCommit);
  if (!commit) return undefined;
  return `${commit.slice(0, 12)}${info.gitDirty === true ? ' with uncommitted changes' : ''}`;
}

function memory(record: StoredRunRecord): string | undefined {
  const sizes = scenarioOf(record).memoryMiB;
  if (Array.isArray(sizes)) return `${sizes.map((m) => text(m) ?? '?').join(', ')} MiB`;
  return text(sizes) ? `${text(sizes)} MiB` : undefined;
}

/** The settings compared, in the order a reader would ask about them. */
export const RUN_SETTINGS: readonly Setting[] = [
  {
    name: 'KASLR',
    read: (r) => {
      const k = scenarioOf(r).kaslr;
      return typeof k === 'boolean' ? (k ? 'on' : 'off (nokaslr)') : undefined;
    },
  },
  { name: 'image', read: image },
  { name: 'guests', read: (r) => text(scenarioOf(r).guests) },
  { name: 'memory', read: memory },
  { name: 'workload', read: workload },
  {
    name: 'CPU models',
    read: (r) => {
      const m = scenarioOf(r).cpuModels;
      return Array.isArray(m) ? m.join(', ') : 'the backend default';
    },
  },
  { name: 'backend', read: (r) => text(object(r.backend).name) ?? text(scenarioOf(r).backend) },
  { name: 'accelerator', read: (r) => text(object(r.backend).accelerator) },
  { name: 'duration', read: (r) => (text(scenarioOf(r).durationS) ? `${text(scenarioOf(r).durationS)} s` : undefined) },
  { name: 'tick', read: (r) => (text(scenarioOf(r).tickS) ? `${text(scenarioOf(r).tickS)} s` : undefined) },
  { name: 'harness commit', read: harness },
];

export interface SettingDifference {
  name: string;
  /** The value of each run, in the order given ('not recorded' where its run.json does not say). */
  values: string[];
}

/** The settings whose values are not the same in all the records. */
export function differingSettings(records: readonly StoredRunRecord[]): SettingDifference[] {
  return RUN_SETTINGS.flatMap((setting) => {
    const values = records.map((record) => setting.read(record) ?? 'not recorded');
    return new Set(values).size > 1 ? [{ name: setting.name, values }] : [];
  });
}
