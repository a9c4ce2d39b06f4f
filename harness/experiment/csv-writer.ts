/**
 * Appends CSV rows to a file as they come (csv-stringify, one synchronous write per row), so that an
 * interrupted run leaves a valid CSV with every completed row.
 */
import fs from 'node:fs';
import { stringify } from 'csv-stringify/sync';

export type CsvValue = string | number | boolean | undefined;

export class CsvAppender<Column extends string> {
  private readonly fd: number;
  rows = 0;

  constructor(
    readonly file: string,
    private readonly columns: readonly Column[],
  ) {
    this.fd = fs.openSync(file, 'a');
    if (fs.fstatSync(this.fd).size === 0) fs.writeSync(this.fd, stringify([columns as readonly string[] as string[]]));
  }

  append(row: Partial<Record<Column, CsvValue>>): void {
    const cells = this.columns.map((column) => {
      const value = row[column];
      if (value === undefined) return '';
      if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
      return String(value);
    });
    fs.writeSync(this.fd, stringify([cells]));
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
