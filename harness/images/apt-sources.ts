/**
 * The host's apt sources, read the way apt reads them (/etc/apt/sources.list one-line entries and
 * /etc/apt/sources.list.d/*.list and *.sources, deb822), so that a system image is bootstrapped from exactly
 * the archive the host already uses and from nothing else.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';

export interface AptSource {
  type: 'deb' | 'deb-src';
  uri: string;
  suite: string;
  components: string[];
  /** A keyring file (deb822 Signed-By / one-line [signed-by=…]); undefined: apt's trusted keys. */
  signedBy?: string;
  /** Where the entry was read, for error messages. */
  from: string;
}

/** One-line entries: `deb [opt=value …] URI SUITE COMPONENT…`; comments and blank lines are skipped. */
export function parseOneLineSources(text: string, from: string): AptSource[] {
  const sources: AptSource[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const where = `${from}:${index + 1}`;
    const match = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) throw new XmeError(`cannot read the apt source at ${where}: '${line}'`);
    const options = Object.fromEntries(
      (match[2] ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((option) => {
          const [key, ...value] = option.split('=');
          return [key!.toLowerCase(), value.join('=')];
        }),
    );
    sources.push({
      type: match[1] as AptSource['type'],
      uri: match[3]!,
      suite: match[4]!,
      components: match[5]!.split(/\s+/).filter(Boolean),
      ...(options['signed-by'] ? { signedBy: options['signed-by'] } : {}),
      from: where,
    });
  });
  return sources;
}

/** deb822 stanzas (Types, URIs, Suites, Components, Signed-By, Enabled): one entry per type × URI × suite. */
export function parseDeb822Sources(text: string, from: string): AptSource[] {
  const sources: AptSource[] = [];
  const stanzas = text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .split(/\n[ \t]*\n/);
  stanzas.forEach((stanza, index) => {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (!line.trim()) continue;
      if (/^[ \t]/.test(line)) {
        if (!last) throw new XmeError(`cannot read ${from}: a continuation line comes before any field`);
        fields.set(last, `${fields.get(last)}\n${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) throw new XmeError(`cannot read ${from}: '${line}' is not a 'Field: value' line`);
      last = line.slice(0, colon).trim().toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    if (fields.size === 0) return;
    if (/^(no|false|0)$/i.test(fields.get('enabled') ?? '')) return;
    const where = `${from} (stanza ${index + 1})`;
    const list = (field: string) => (fields.get(field) ?? '').split(/\s+/).filter(Boolean);
    const signedBy = fields.get('signed-by');
    if (signedBy?.includes('\n')) {
      throw new XmeError(
        `${where} has an inline Signed-By key: xme passes keyrings to mmdebstrap by file`,
        'point Signed-By at a keyring file, e.g. /usr/share/keyrings/debian-archive-keyring.gpg',
      );
    }
    for (const type of list('types')) {
      if (type !== 'deb' && type !== 'deb-src') throw new XmeError(`${where}: unknown source type '${type}'`);
      for (const uri of list('uris')) {
        for (const suite of list('suites')) {
          sources.push({ type, uri, suite, components: list('components'), ...(signedBy ? { signedBy } : {}), from: where });
        }
      }
    }
  });
  return sources;
}

/** Every entry apt reads on this host (files apt ignores, such as *.disabled, are ignored here too). */
export function readHostSources(etcApt = '/etc/apt'): AptSource[] {
  const sources: AptSource[] = [];
  const main = path.join(etcApt, 'sources.list');
  if (fs.existsSync(main)) sources.push(...parseOneLineSources(fs.readFileSync(main, 'utf8'), main));
  const partsDir = path.join(etcApt, 'sources.list.d');
  const parts = fs.existsSync(partsDir) ? fs.readdirSync(partsDir).sort() : [];
  for (const file of parts) {
    const full = path.join(partsDir, file);
    if (file.endsWith('.list')) sources.push(...parseOneLineSources(fs.readFileSync(full, 'utf8'), full));
    else if (file.endsWith('.sources')) sources.push(...parseDeb822Sources(fs.readFileSync(full, 'utf8'), full));
  }
  return sources;
}

/**
 * The host's binary entries for one Debian release — the suite itself, its -updates and its -security — with
 * only the wanted components: nothing from another release, a backports suite or a third-party archive.
 */
export function releaseSources(all: AptSource[], suite: string, components: readonly string[]): AptSource[] {
  const wanted = new Set([suite, `${suite}-updates`, `${suite}-security`]);
  const chosen = all
    .filter((source) => source.type === 'deb' && wanted.has(source.suite))
    .map((source) => ({ ...source, components: source.components.filter((c) => components.includes(c)) }))
    .filter((source) => source.components.length > 0);
  if (!chosen.some((source) => source.suite === suite)) {
    throw new XmeError(
      `the host's apt sources have no '${suite}' entry with component ${components.join('/')}`,
      `a ${suite} system image is bootstrapped from the host's own archive: add ${suite} to /etc/apt/sources.list.d/debian.sources`,
    );
  }
  return chosen;
}

/** The one-line form mmdebstrap takes as a MIRROR argument (and writes into the tree's sources.list). */
export function sourceLine(source: AptSource, type: AptSource['type'] = source.type): string {
  const options = source.signedBy ? ` [signed-by=${source.signedBy}]` : '';
  return `${type}${options} ${source.uri} ${source.suite} ${source.components.join(' ')}`;
}
