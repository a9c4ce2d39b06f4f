/**
 * System.map: "<address> <type> <name>" per line, as `nm -n vmlinux` prints it. Addresses are kept as hex text
 * and turned into bigint on lookup, so parsing a 4 MB map (≈100k symbols) stays fast.
 */
import { XmeError } from '../util/errors.ts';

export interface SymbolEntry {
  address: bigint;
  type: string;
}

const LINE = /^([0-9a-fA-F]{8,16}) ([a-zA-Z?!-]) (\S+)$/;

export class SystemMap {
  /** Every "name@hex" pair, repeated names included; built on first use. */
  private pairs: Set<string> | undefined;

  private constructor(
    /** Where it came from, for error messages. */
    readonly source: string,
    private readonly symbols: Map<string, { hex: string; type: string }>,
    private readonly text: string,
  ) {}

  /** Parse a System.map; a malformed line is an error naming its line number. */
  static parse(text: string, source = 'System.map'): SystemMap {
    const symbols = new Map<string, { hex: string; type: string }>();
    let lineNumber = 0;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      lineNumber++;
      const line = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
      start = end + 1;
      if (line.length === 0) continue;
      const match = LINE.exec(line);
      if (!match) {
        throw new XmeError(
          `${source}: line ${lineNumber} is not "<address> <type> <symbol>": ${JSON.stringify(line.slice(0, 80))}`,
          'the file is truncated or is not a System.map; rebuild the image (xme image build --force)',
        );
      }
      // Names can repeat (static symbols of different files): the first one wins, as in /proc/kallsyms lookups.
      if (!symbols.has(match[3]!)) symbols.set(match[3]!, { hex: match[1]!, type: match[2]! });
    }
    if (symbols.size === 0) throw new XmeError(`${source} is empty`, 'rebuild the image (xme image build --force)');
    return new SystemMap(source, symbols, text);
  }

  get size(): number {
    return this.symbols.size;
  }

  has(name: string): boolean {
    return this.symbols.has(name);
  }

  lookup(name: string): SymbolEntry | undefined {
    const entry = this.symbols.get(name);
    return entry ? { address: BigInt(`0x${entry.hex}`), type: entry.type } : undefined;
  }

  /** Whether the map lists this name at this address (any of its occurrences). */
  hasAt(name: string, address: bigint): boolean {
    if (!this.pairs) {
      this.pairs = new Set();
      for (const match of this.text.matchAll(/^([0-9a-fA-F]{8,16}) \S (\S+)\r?$/gm)) {
        this.pairs.add(`${match[2]}@${match[1]!.toLowerCase().padStart(16, '0')}`);
      }
    }
    return this.pairs.has(`${name}@${address.toString(16).padStart(16, '0')}`);
  }

  /** The address of a symbol that must exist; a missing one is an error naming it. */
  address(name: string): bigint {
    const entry = this.lookup(name);
    if (!entry) {
      throw new XmeError(`${this.source} has no symbol '${name}'`, 'the file is truncated or belongs to another kind of kernel');
    }
    return entry.address;
  }
}
