/**
 * Suites: a list of scenarios, each with its own overrides, that together make one body of results (the
 * thesis's figures). suites/<name>.json is validated field by field as scenarios are, and an error names the
 * field, e.g. `suite thesis: field 'entries[2].memoryMiB[0]' …`. Expanding a suite into cells is cells.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError, errorMessage } from '../util/errors.ts';
import { projectRoot } from '../util/paths.ts';
import { BACKENDS, type BackendName } from '../backends/registry.ts';
import { MAX_GUESTS } from '../scenario/scenario.ts';

/** What an entry (or the quick block) may change in its scenario: the same overrides as `xme run`. */
export interface EntryOverrides {
  memoryMiB?: number[];
  repetitions?: number;
  kaslr?: boolean;
  backend?: BackendName;
  guests?: number[];
  durationS?: number;
  tickS?: number;
}

export interface SuiteEntry extends EntryOverrides {
  /** A scenario name (scenarios/<name>.json) or a path relative to the suite file. */
  scenario: string;
  /** Names the entry's cells instead of the scenario's name: two entries of one scenario need distinct labels unless kaslr or backend tells them apart. */
  label?: string;
}

export interface QuickBlock {
  /** Overrides applied to every entry kept, over the entry's own (the CI-sized suite). */
  overrides: EntryOverrides;
  /** Labels (or scenario names) of the entries the quick suite keeps; default: all. */
  entries?: string[];
}

export interface Suite {
  name: string;
  description: string;
  entries: SuiteEntry[];
  quick?: QuickBlock;
  /** The folder of the suite file: scenario paths are relative to it. */
  baseDir: string;
}

export const suitesDir = path.join(projectRoot, 'suites');
const SUITE_FIELDS = ['$comment', 'name', 'description', 'entries', 'quick'];
const OVERRIDE_FIELDS = ['memoryMiB', 'repetitions', 'kaslr', 'backend', 'guests', 'durationS', 'tickS'];
const ENTRY_FIELDS = ['$comment', 'scenario', 'label', ...OVERRIDE_FIELDS];
const QUICK_FIELDS = ['$comment', 'entries', ...OVERRIDE_FIELDS];
const NAME = /^[a-z0-9][a-z0-9_-]*$/i;

function validator(suiteName: string) {
  const fail = (field: string, problem: string): never => {
    throw new XmeError(`suite ${suiteName}: field '${field}' ${problem}`, 'see suites/README.md for the format');
  };
  const object = (value: unknown, field: string): Record<string, unknown> => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, 'must be an object');
    return value as Record<string, unknown>;
  };
  const known = (raw: Record<string, unknown>, prefix: string, fields: string[], what: string) => {
    for (const key of Object.keys(raw)) if (!fields.includes(key)) fail(`${prefix}${key}`, `is not ${what} field (known: ${fields.slice(1).join(', ')})`);
  };
  const integer = (value: unknown, field: string, min: number, max: number): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
      fail(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return value as number;
  };
  const positive = (value: unknown, field: string, max: number): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max)
      fail(field, `must be a number above 0 and at most ${max}, got ${JSON.stringify(value)}`);
    return value as number;
  };
  /** The override fields of an entry or of the quick block; the scenario validates the result again (withOverrides). */
  const overrides = (raw: Record<string, unknown>, prefix: string): EntryOverrides => {
    const out: EntryOverrides = {};
    if (raw.memoryMiB !== undefined) {
      const list = Array.isArray(raw.memoryMiB) ? raw.memoryMiB : [raw.memoryMiB];
      if (list.length === 0) fail(`${prefix}memoryMiB`, 'must not be an empty list');
      out.memoryMiB = list.map((m, i) => integer(m, Array.isArray(raw.memoryMiB) ? `${prefix}memoryMiB[${i}]` : `${prefix}memoryMiB`, 64, 3072));
      if (new Set(out.memoryMiB).size !== out.memoryMiB.length) fail(`${prefix}memoryMiB`, 'names a size twice: each size is a cell');
    }
    if (raw.repetitions !== undefined) out.repetitions = integer(raw.repetitions, `${prefix}repetitions`, 1, 1000);
    if (raw.kaslr !== undefined) {
      if (typeof raw.kaslr !== 'boolean') fail(`${prefix}kaslr`, `must be true or false, got ${JSON.stringify(raw.kaslr)}`);
      out.kaslr = raw.kaslr as boolean;
    }
    if (raw.backend !== undefined) {
      if (!(BACKENDS as readonly unknown[]).includes(raw.backend))
        fail(`${prefix}backend`, `must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(raw.backend)}`);
      out.backend = raw.backend as BackendName;
    }
    if (raw.guests !== undefined) {
      // A list is a sweep inside each cell (one run boots each count in turn), not a cell per count.
      const list = Array.isArray(raw.guests) ? raw.guests : [raw.guests];
      if (list.length === 0) fail(`${prefix}guests`, 'must not be an empty list');
      out.guests = list.map((n, i) => integer(n, Array.isArray(raw.guests) ? `${prefix}guests[${i}]` : `${prefix}guests`, 1, MAX_GUESTS));
    }
    if (raw.durationS !== undefined) out.durationS = positive(raw.durationS, `${prefix}durationS`, 24 * 3600);
    if (raw.tickS !== undefined) out.tickS = positive(raw.tickS, `${prefix}tickS`, 24 * 3600);
    return out;
  };
  return { fail, object, known, overrides };
}

/** Validate parsed JSON as a suite. `fallbackName` names it in errors when it has no valid name. */
export function parseSuite(json: unknown, fallbackName = 'suite', baseDir = suitesDir): Suite {
  const v0 = validator(fallbackName);
  const raw = v0.object(json, '(root)');
  const name = typeof raw.name === 'string' && NAME.test(raw.name) ? raw.name : v0.fail('name', 'must be a name of letters, digits, _ and -');
  const v = validator(name);
  v.known(raw, '', SUITE_FIELDS, 'a suite');
  if (raw.description !== undefined && typeof raw.description !== 'string') v.fail('description', 'must be a string');
  if (!Array.isArray(raw.entries) || raw.entries.length === 0) v.fail('entries', 'must be a non-empty list of {scenario, …overrides}');
  const entries = (raw.entries as unknown[]).map((item, i): SuiteEntry => {
    const prefix = `entries[${i}].`;
    const entry = v.object(item, `entries[${i}]`);
    v.known(entry, prefix, ENTRY_FIELDS, 'an entry');
    if (typeof entry.scenario !== 'string' || entry.scenario === '') v.fail(`${prefix}scenario`, 'must be a scenario name or a path to a .json file');
    if (entry.label !== undefined && (typeof entry.label !== 'string' || !NAME.test(entry.label))) {
      v.fail(`${prefix}label`, `must be letters, digits, _ and - (it names cells), got ${JSON.stringify(entry.label)}`);
    }
    return { scenario: entry.scenario as string, ...(entry.label !== undefined ? { label: entry.label as string } : {}), ...v.overrides(entry, prefix) };
  });
  let quick: QuickBlock | undefined;
  if (raw.quick !== undefined) {
    const block = v.object(raw.quick, 'quick');
    v.known(block, 'quick.', QUICK_FIELDS, 'a quick');
    quick = { overrides: v.overrides(block, 'quick.') };
    if (block.entries !== undefined) {
      if (!Array.isArray(block.entries) || block.entries.length === 0) v.fail('quick.entries', 'must be a non-empty list of entry labels');
      const labels = new Set(entries.map((e) => e.label ?? path.basename(e.scenario, '.json')));
      (block.entries as unknown[]).forEach((label, i) => {
        if (typeof label !== 'string' || !labels.has(label))
          v.fail(`quick.entries[${i}]`, `must be the label (or scenario name) of an entry (${[...labels].join(', ')}), got ${JSON.stringify(label)}`);
      });
      quick.entries = block.entries as string[];
    }
  }
  return { name, description: (raw.description as string | undefined) ?? '', entries, ...(quick ? { quick } : {}), baseDir };
}

export function listSuites(): string[] {
  if (!fs.existsSync(suitesDir)) return [];
  return fs
    .readdirSync(suitesDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Load a suite by name (suites/<name>.json) or by path. */
export function loadSuite(nameOrPath: string): Suite {
  const byName = path.join(suitesDir, `${nameOrPath}.json`);
  const file = fs.existsSync(byName) ? byName : nameOrPath;
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new XmeError(`no suite '${nameOrPath}'`, `shipped suites: ${listSuites().join(', ') || 'none'}; or give a path to a .json file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new XmeError(`suite file ${file} is not valid JSON: ${errorMessage(error)}`);
  }
  return parseSuite(json, path.basename(file, '.json'), path.dirname(path.resolve(file)));
}
