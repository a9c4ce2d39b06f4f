/**
 * The CSV files of a results folder, written and read through one description of their columns (a
 * `CsvSchema`): the column order, each column's type, and which columns every reader needs. The row type
 * is derived from the schema, so a column exists in exactly one place; adding one changes the schema and
 * the code that computes it, and every writer and reader follows.
 *
 * Writing appends one synchronous write per row (csv-stringify), so that an interrupted run leaves a valid
 * CSV with every completed row. Reading checks the header and every cell, and names the file, line and
 * column of whatever is wrong. A column a file lacks reads as empty: folders written before a column
 * existed still read (unless the column is required).
 */
import fs from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { errorMessage, XmeError } from '../util/errors.ts';

export interface ColumnSpec {
  type: 'number' | 'text';
  /** Every row has a value: a reader refuses a file without this column, and a number column's empty cell. */
  required?: boolean;
  /** A reader refuses a file without this column, though its cells may be empty. */
  inHeader?: boolean;
}

/** Columns in file order (object key order) with their types. */
export type CsvSchema = Readonly<Record<string, ColumnSpec>>;

type CellOf<C extends ColumnSpec> = C['type'] extends 'number' ? number : string;
type RequiredKeys<S extends CsvSchema> = { [K in keyof S]: S[K]['required'] extends true ? K : never }[keyof S];
type OptionalKeys<S extends CsvSchema> = Exclude<keyof S, RequiredKeys<S>>;

/** One row of a schema's file: required columns always have a value; the others may be empty (undefined). */
export type RowOf<S extends CsvSchema> = { [K in RequiredKeys<S>]: CellOf<S[K]> } & { [K in OptionalKeys<S>]?: CellOf<S[K]> | undefined };

export const numberColumn = { type: 'number' } as const;
export const textColumn = { type: 'text' } as const;
export const requiredNumber = { type: 'number', required: true } as const;
export const requiredText = { type: 'text', required: true } as const;
/** A number column every file of its kind has, whose cells may be empty (e.g. an sd with n = 1). */
export const headerNumber = { type: 'number', inHeader: true } as const;

export type CsvValue = string | number | boolean | undefined;

/** A cell as written: integers as they are, other numbers to 6 significant digits, nothing for undefined. */
function cellText(value: CsvValue): string {
  if (value === undefined) return '';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  return String(value);
}

/** Appends rows of one schema to a file as they come; writes the header when the file is new or empty. */
export class CsvAppender<S extends CsvSchema> {
  private readonly fd: number;
  private readonly columns: readonly (keyof S & string)[];
  rows = 0;

  constructor(
    readonly file: string,
    schema: S,
  ) {
    this.columns = Object.keys(schema) as (keyof S & string)[];
    this.fd = fs.openSync(file, 'a');
    if (fs.fstatSync(this.fd).size === 0) fs.writeSync(this.fd, stringify([this.columns as string[]]));
  }

  append(row: Partial<Record<keyof S, CsvValue>>): void {
    fs.writeSync(this.fd, stringify([this.columns.map((column) => cellText(row[column]))]));
    this.rows++;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** Writes a whole file of rows at once, replacing any file left there. */
export function writeCsv<S extends CsvSchema>(file: string, schema: S, rows: Iterable<Partial<Record<keyof S, CsvValue>>>): void {
  fs.rmSync(file, { force: true });
  const csv = new CsvAppender(file, schema);
  try {
    for (const row of rows) csv.append(row);
  } finally {
    csv.close();
  }
}

export interface ReadCsvOptions {
  /** What the file should be, for errors ("a summary.csv"). */
  kind: string;
  /** The hint of a "not a <kind>" error. */
  hint?: string;
  /** Keep only rows for which this is true (called with the raw cells by column name, before any check). */
  where?: (cell: (column: string) => string) => boolean;
}

/** Reads a schema's file: header checked for the required columns, every kept cell converted and checked. */
export function readCsv<S extends CsvSchema>(file: string, schema: S, options: ReadCsvOptions): RowOf<S>[] {
  let table: string[][];
  try {
    table = parse(fs.readFileSync(file, 'utf8'), { skip_empty_lines: true, relax_column_count: true }) as string[][];
  } catch (error) {
    throw new XmeError(`${file} is not readable CSV: ${errorMessage(error)}`);
  }
  const header = table[0] ?? [];
  const required = Object.keys(schema).filter((column) => schema[column]!.required || schema[column]!.inHeader);
  const missing = required.filter((column) => !header.includes(column));
  if (missing.length > 0) throw new XmeError(`${file} is not ${options.kind}: it has no column ${missing.join(', ')}`, options.hint);
  const index = new Map(header.map((column, i) => [column, i]));
  const rows: RowOf<S>[] = [];
  table.slice(1).forEach((cells, i) => {
    const cell = (column: string) => {
      const at = index.get(column);
      return at === undefined ? '' : (cells[at] ?? '');
    };
    if (options.where && !options.where(cell)) return;
    const line = i + 2;
    const row: Record<string, string | number | undefined> = {};
    for (const [column, spec] of Object.entries(schema)) {
      const text = cell(column);
      if (spec.type === 'text') {
        row[column] = text === '' && !spec.required ? undefined : text;
        continue;
      }
      if (text === '') {
        if (spec.required) throw new XmeError(`${file} line ${line}: ${column} is empty`);
        row[column] = undefined;
        continue;
      }
      const value = Number(text);
      if (!Number.isFinite(value)) throw new XmeError(`${file} line ${line}: ${column} is not a number: '${text}'`);
      row[column] = value;
    }
    rows.push(row as RowOf<S>);
  });
  return rows;
}
