import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDeb822Sources, parseOneLineSources, readHostSources, releaseSources, sourceLine } from './apt-sources.ts';

const KEY = '/usr/share/keyrings/debian-archive-keyring.gpg';

// The host's /etc/apt/sources.list.d/debian.sources as Debian 12 writes it, plus a disabled stanza.
const DEB822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: ${KEY}

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: ${KEY}

Enabled: no
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
`;

let tmp: string | undefined;
afterEach(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
});

describe('apt sources', () => {
  it('reads deb822 stanzas: one entry per type × URI × suite, comments and disabled stanzas skipped', () => {
    const sources = parseDeb822Sources(DEB822, 'debian.sources');
    expect(sources.map((s) => `${s.type} ${s.uri} ${s.suite} ${s.components.join(',')} ${s.signedBy}`)).toEqual([
      `deb http://deb.debian.org/debian bookworm main ${KEY}`,
      `deb http://deb.debian.org/debian bookworm-updates main ${KEY}`,
      `deb http://deb.debian.org/debian-security bookworm-security main ${KEY}`,
    ]);
    expect(sources[2]!.from).toBe('debian.sources (stanza 2)');
  });

  it('reads one-line entries with options, and names the line it cannot read', () => {
    const text = `# comment\ndeb [arch=amd64 signed-by=${KEY}] http://deb.debian.org/debian bookworm main contrib\n\ndeb-src http://deb.debian.org/debian bookworm main # tail comment\n`;
    const sources = parseOneLineSources(text, 'sources.list');
    expect(sources).toEqual([
      { type: 'deb', uri: 'http://deb.debian.org/debian', suite: 'bookworm', components: ['main', 'contrib'], signedBy: KEY, from: 'sources.list:2' },
      { type: 'deb-src', uri: 'http://deb.debian.org/debian', suite: 'bookworm', components: ['main'], from: 'sources.list:4' },
    ]);
    expect(() => parseOneLineSources('deb\n', 'x.list')).toThrow(/x.list:1/);
  });

  it('refuses an inline Signed-By key (mmdebstrap takes keyring files)', () => {
    const inline = `Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n`;
    expect(() => parseDeb822Sources(inline, 'inline.sources')).toThrow(/inline Signed-By/);
  });

  it('keeps one release (itself, -updates, -security) and the wanted components only', () => {
    const all = [
      ...parseDeb822Sources(DEB822, 'debian.sources'),
      ...parseOneLineSources(
        [
          'deb http://deb.debian.org/debian bookworm-backports main',
          'deb http://deb.debian.org/debian trixie main',
          'deb http://deb.debian.org/debian bookworm non-free-firmware',
          'deb-src http://deb.debian.org/debian bookworm main',
          'deb https://example.invalid/node nodistro main',
        ].join('\n'),
        'extra.list',
      ),
    ];
    const chosen = releaseSources(all, 'bookworm', ['main']);
    expect(chosen.map((s) => sourceLine(s))).toEqual([
      `deb [signed-by=${KEY}] http://deb.debian.org/debian bookworm main`,
      `deb [signed-by=${KEY}] http://deb.debian.org/debian bookworm-updates main`,
      `deb [signed-by=${KEY}] http://deb.debian.org/debian-security bookworm-security main`,
    ]);
    expect(sourceLine(chosen[0]!, 'deb-src')).toBe(`deb-src [signed-by=${KEY}] http://deb.debian.org/debian bookworm main`);
    expect(() => releaseSources(all, 'bullseye', ['main'])).toThrow(/no 'bullseye' entry/);
  });

  it('reads the files apt reads, and ignores the ones it ignores', () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-apt-'));
    fs.mkdirSync(path.join(tmp, 'sources.list.d'));
    fs.writeFileSync(path.join(tmp, 'sources.list'), '# nothing here\n');
    fs.writeFileSync(path.join(tmp, 'sources.list.d', 'debian.sources'), DEB822);
    fs.writeFileSync(path.join(tmp, 'sources.list.d', 'other.list.disabled'), 'deb http://example.invalid/x bookworm main\n');
    fs.writeFileSync(path.join(tmp, 'sources.list.d', 'more.list'), 'deb http://deb.debian.org/debian bookworm contrib\n');
    const sources = readHostSources(tmp);
    expect(sources.map((s) => `${s.suite} ${s.components.join(',')}`)).toEqual([
      'bookworm main',
      'bookworm-updates main',
      'bookworm-security main',
      'bookworm contrib',
    ]);
  });
});
