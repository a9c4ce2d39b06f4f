/**
 * A suite expanded into cells: scenario variant × memory size × repetition, each run as a run of its own
 * (one boot of the guests per cell, as in `xme run`). Cells are the unit of sharding and of merging, so
 * each has a stable id (`thesis-kernel-code.qemu.m256.kaslr0.r2`) made only of what the cell measures,
 * never of where or when it ran.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { XmeError, errorMessage } from '../util/errors.ts';
import { loadScenario, scenariosDir, withOverrides, type Scenario } from '../scenario/scenario.ts';
import type { EntryOverrides, Suite } from './suite.ts';

/** One entry of a suite with its overrides applied: the scenario an unsharded run of the entry would run. */
export interface Variant {
  /** `<label>.<backend>.kaslr<0|1>`: names the entry's merged results folder. */
  id: string;
  /** The entry's index in the suite file. */
  entry: number;
  label: string;
  scenario: Scenario;
}

export interface Cell {
  /** `<label>.<backend>.m<MiB>.kaslr<0|1>.r<repetition>` */
  id: string;
  /** Position in the suite's cell order (entries, then memory sizes, then repetitions): what shards partition. */
  index: number;
  variant: string;
  memoryMiB: number;
  repetition: number;
  /**
   * Derived from the suite's name and the cell id, so it is the same wherever the cell runs. Recorded only:
   * a scenario without a workload seed gives each guest a random seed of its own on purpose (guests with
   * their own data), and one seed for all guests would make their data pages identical (cow-faults' design),
   * changing what the scenario measures.
   */
  seed: number;
}

export interface ExpandedSuite {
  suite: string;
  quick: boolean;
  /** sha256 over the suite's name, quick flag, and every cell with its scenario: equal digests, same experiment. */
  digest: string;
  variants: Variant[];
  cells: Cell[];
}

export function cellSeed(suite: string, cellId: string): number {
  return crypto.createHash('sha256').update(`${suite}/${cellId}`).digest().readUInt32BE(0);
}

/** The scenario one cell runs: its variant's, at one memory size, one repetition (numbered by the runner's firstRepetition). */
export function cellScenario(variant: Variant, cell: Cell): Scenario {
  return { ...variant.scenario, memoryMiB: [cell.memoryMiB], repetitions: 1 };
}

function scenarioRef(suite: Suite, name: string): string {
  // A shipped scenario by name; anything else is a path, relative to the suite file.
  return fs.existsSync(path.join(scenariosDir, `${name}.json`)) ? name : path.resolve(suite.baseDir, name);
}

export function expandSuite(suite: Suite, options: { quick?: boolean } = {}): ExpandedSuite {
  const quick = options.quick ?? false;
  if (quick && !suite.quick) throw new XmeError(`suite ${suite.name} has no quick version`, 'add a "quick" block to the suite file, or run it without --quick');
  const variants: Variant[] = [];
  const cells: Cell[] = [];
  const cellOwner = new Map<string, number>();
  suite.entries.forEach((entry, i) => {
    const label = entry.label ?? path.basename(entry.scenario, '.json');
    if (quick && suite.quick?.entries && !suite.quick.entries.includes(label)) return;
    const overrides: EntryOverrides = { ...strip(entry), ...(quick ? suite.quick!.overrides : {}) };
    let scenario: Scenario;
    try {
      scenario = withOverrides(loadScenario(scenarioRef(suite, entry.scenario)), overrides);
    } catch (error) {
      throw new XmeError(
        `suite ${suite.name}: entries[${i}] (scenario ${entry.scenario}${quick ? ', quick' : ''}): ${error instanceof XmeError ? error.message : errorMessage(error)}`,
        (error instanceof XmeError ? error.hint : undefined) ?? 'see suites/README.md for the format',
      );
    }
    const variant: Variant = { id: `${label}.${scenario.backend}.kaslr${scenario.kaslr ? 1 : 0}`, entry: i, label, scenario };
    variants.push(variant);
    for (const memoryMiB of scenario.memoryMiB) {
      for (let repetition = 1; repetition <= scenario.repetitions; repetition++) {
        const id = `${label}.${scenario.backend}.m${memoryMiB}.kaslr${scenario.kaslr ? 1 : 0}.r${repetition}`;
        const first = cellOwner.get(id);
        if (first !== undefined) {
          throw new XmeError(
            `suite ${suite.name}: field 'entries[${i}]' gives cell ${id}, already given by entries[${first}]`,
            'give one of the entries a distinct "label"',
          );
        }
        cellOwner.set(id, i);
        cells.push({ id, index: cells.length, variant: variant.id, memoryMiB, repetition, seed: cellSeed(suite.name, id) });
      }
    }
  });
  const digest = crypto
    .createHash('sha256')
    .update(JSON.stringify({ suite: suite.name, quick, variants: variants.map((v) => ({ id: v.id, scenario: v.scenario })), cells: cells.map((c) => c.id) }))
    .digest('hex');
  return { suite: suite.name, quick, digest, variants, cells };
}

/** The entry's override fields alone (not scenario or label). */
function strip(entry: Suite['entries'][number]): EntryOverrides {
  const { scenario: _scenario, label: _label, ...overrides } = entry;
  return overrides;
}
