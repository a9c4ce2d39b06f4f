/** Finding a results folder from a command-line argument, and the first check every reader of one makes. */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';

/** A command-line argument as a results folder: the path itself, or else <resultsRoot>/<argument> when that exists. */
export function resolveRunDir(argument: string, resultsRoot?: string): string {
  if (fs.existsSync(argument) || resultsRoot === undefined) return path.resolve(argument);
  const underRoot = path.join(resultsRoot, argument);
  return fs.existsSync(underRoot) ? underRoot : path.resolve(argument);
}

/** The path exists and is a folder (else a one-line XmeError). */
export function requireFolder(dir: string, hint: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new XmeError(`results folder ${dir} does not exist`, hint);
  }
  if (!stat.isDirectory()) throw new XmeError(`${dir} is not a results folder: it is not a directory`, hint);
}
