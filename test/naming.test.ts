import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { caught } from './helpers.js';
import {
  MAX_NAME_BYTES,
  NameRegistry,
  filenameFromContentDisposition,
  nameFromUrl,
  resolveInside,
  safeRelativePath,
  sanitizeSegment,
} from '../src/names/naming.js';
import { splitExt } from '../src/names/ext.js';

const hex = (text: string, length = 8): string => createHash('sha1').update(text).digest('hex').slice(0, length);
const bytes = (text: string): number => Buffer.byteLength(text);

describe('sanitizeSegment', () => {
  it.each([
    ['cat.jpg', 'cat.jpg'],
    ['', ''],
    ['   ', ''],
    ['.', '_'],
    ['..', '_'],
    ['. .', '_'],
    ['.htaccess', '_htaccess'],
    ['a.jpg.', 'a.jpg'],
    ['a. . ', 'a'],
    ['  padded.jpg  ', 'padded.jpg'],
    ['a/b\\c.jpg', 'a_b_c.jpg'],
    ['a<b>c:d"e|f?g*h.jpg', 'a_b_c_d_e_f_g_h.jpg'],
    ['nul\0.jpg', 'nul_.jpg'],
    ['tab\there.jpg', 'tab_here.jpg'],
    ['c1\u0085.jpg', 'c1_.jpg'],
    ['x\u202Egpj.exe', 'x_gpj.exe'],
    ['lone\ud800.jpg', 'lone_.jpg'],
    ['e\u0301.jpg', '\u00e9.jpg'],
    ['CON', '_CON'],
    ['nul.jpg', '_nul.jpg'],
    ['Aux.tar.gz', '_Aux.tar.gz'],
    ['com1.png', '_com1.png'],
    ['LPT9', '_LPT9'],
    ['console.jpg', 'console.jpg'],
    ['com10.jpg', 'com10.jpg'],
  ])('%j → %j', (name, safe) => {
    expect(sanitizeSegment(name)).toBe(safe);
  });

  it.each([
    ['ASCII with an extension', `${'a'.repeat(300)}.jpg`, '.jpg'],
    ['3-byte characters', `${'猫'.repeat(100)}.jpeg`, '.jpeg'],
    ['4-byte characters', `${'🐈'.repeat(80)}.png`, '.png'],
    ['no extension', 'b'.repeat(300), ''],
    ['an "extension" too long to keep', `x.${'e'.repeat(300)}`, ''],
  ])('truncates a long name (%s) to ≤ MAX_NAME_BYTES on a character boundary', (_, name, ext) => {
    const safe = sanitizeSegment(name);
    expect(bytes(safe)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(bytes(safe)).toBeGreaterThan(MAX_NAME_BYTES - 4);
    expect(safe).not.toContain('\uFFFD');
    expect(name.startsWith(safe.slice(0, safe.length - ext.length))).toBe(true);
    if (ext) expect(safe.endsWith(ext)).toBe(true);
  });
});

describe('nameFromUrl', () => {
  it.each([
    ['plain', 'https://h.example/a/b/cat.jpg', 'cat.jpg'],
    ['query and fragment ignored', 'https://h.example/cat.jpg?v=1&w=2#top', 'cat.jpg'],
    ['percent-decoded unicode', 'https://h.example/img/%E7%8C%AB.jpg', '猫.jpg'],
    ['unicode written raw', 'https://h.example/img/猫.jpg', '猫.jpg'],
    ['encoded space', 'https://h.example/my%20cat.jpg', 'my cat.jpg'],
    ['encoded slash makes no folder', 'https://h.example/a%2Fb.jpg', 'a_b.jpg'],
    ['encoded backslash makes no folder', 'https://h.example/a%5Cb.jpg', 'a_b.jpg'],
    ['encoded ../ makes no folder', 'https://h.example/..%2F..%2Fetc%2Fpasswd', '_._.._etc_passwd'],
    ['bad percent-encoding kept', 'https://h.example/%E7%8C.jpg', '%E7%8C.jpg'],
    ['lone percent kept', 'https://h.example/100%.jpg', '100%.jpg'],
    ['good run decoded next to a bad one', 'https://h.example/%E7%8C%AB-%FF.jpg', '猫-%FF.jpg'],
    ['control characters', 'https://h.example/a%00b%1Fc.jpg', 'a_b_c.jpg'],
    ['Windows-illegal characters', 'https://h.example/a%3Ab%3F%2A.jpg', 'a_b__.jpg'],
    ['reserved name', 'https://h.example/nul.jpg', '_nul.jpg'],
    ['reserved name without extension', 'https://h.example/files/CON', '_CON'],
    ['trailing dot', 'https://h.example/x.jpg.', 'x.jpg'],
    ['dotfile', 'https://h.example/.env', '_env'],
  ])('%s: %s → %s', (_, url, name) => {
    expect(nameFromUrl(new URL(url))).toBe(name);
  });

  it.each([
    ['https://h.example/'],
    ['https://h.example'],
    ['https://h.example/a/'],
    ['https://h.example/?id=7'],
    ['https://h.example/%20'],
    ['https://h.example:8080/a/'],
  ])('derives <host>-<8 hex> when the path has no usable name: %s', (text) => {
    const url = new URL(text);
    expect(nameFromUrl(url)).toBe(`h.example-${hex(url.href)}`);
  });

  it('derives distinct names for different queries on the same path', () => {
    expect(nameFromUrl(new URL('https://h.example/?id=1'))).not.toBe(nameFromUrl(new URL('https://h.example/?id=2')));
  });

  it('derives a usable name for an IPv6 host', () => {
    expect(nameFromUrl(new URL('http://[::1]:8080/'))).toMatch(/^\[__1\]-[0-9a-f]{8}$/);
  });

  it('truncates a very long name to ≤ MAX_NAME_BYTES keeping the extension', () => {
    const name = nameFromUrl(new URL(`https://h.example/${encodeURIComponent('猫'.repeat(150))}.jpg`));
    expect(bytes(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(name).toMatch(/^猫+\.jpg$/);
  });
});

describe('filenameFromContentDisposition', () => {
  it.each<[string, string | null | undefined, string | undefined]>([
    ['filename*', "attachment; filename*=UTF-8''%E7%8C%AB.jpg", '猫.jpg'],
    ['filename* with a language', "attachment; filename*=utf-8'en'my%20cat.jpg", 'my cat.jpg'],
    ['filename* in ISO-8859-1', "attachment; filename*=iso-8859-1''%E9t%E9.jpg", 'été.jpg'],
    ['quoted with escapes', 'attachment; filename="a \\"b\\".jpg"', 'a _b_.jpg'],
    ['quoted with a semicolon', 'attachment; filename="semi;colon.jpg"', 'semi;colon.jpg'],
    ['token', 'attachment; filename=token.png', 'token.png'],
    ['no disposition type', 'filename="bare.gif"', 'bare.gif'],
    ['names are case-insensitive', 'ATTACHMENT; FILENAME="Up.JPG"', 'Up.JPG'],
    ['both, filename* last', 'attachment; filename="plain.jpg"; filename*=UTF-8\'\'%C3%A9t%C3%A9.jpg', 'été.jpg'],
    ['both, filename* first', 'attachment; filename*=UTF-8\'\'x.jpg; filename="y.jpg"', 'x.jpg'],
    ['bad filename* falls back to filename', 'attachment; filename*=UTF-8\'\'%E7%8C; filename="fallback.jpg"', 'fallback.jpg'],
    ['unknown charset falls back', 'attachment; filename*=KOI8-R\'\'%C1.jpg; filename="fb.jpg"', 'fb.jpg'],
    ['raw UTF-8 read as latin1', `attachment; filename="${Buffer.from('猫.jpg').toString('latin1')}"`, '猫.jpg'],
    ['real latin1 left alone', 'attachment; filename="\u00e9t\u00e9.jpg"', 'été.jpg'],
    ['traversal', 'inline; filename="../../etc/passwd"', 'passwd'],
    ['traversal in filename*', "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", 'passwd'],
    ['Windows path, backslashes escaped', 'attachment; filename="C:\\\\x\\\\y.jpg"', 'y.jpg'],
    ['Windows path, backslashes raw', 'attachment; filename="C:\\x\\y.jpg"', 'y.jpg'],
    ['Windows path as a token', 'attachment; filename=C:\\x\\y.jpg', 'y.jpg'],
    ['unterminated quote', 'attachment; filename="open.jpg', 'open.jpg'],
    ['dotfile', 'attachment; filename=".htaccess"', '_htaccess'],
    ['reserved', 'attachment; filename="aux.png"', '_aux.png'],
    ['directory only', 'attachment; filename="../"', undefined],
    ['empty filename', 'attachment; filename=""', undefined],
    ['no filename', 'attachment', undefined],
    ['empty header', '', undefined],
    ['undefined', undefined, undefined],
    ['null', null, undefined],
  ])('%s', (_, header, name) => {
    expect(filenameFromContentDisposition(header)).toBe(name);
  });
});

describe('safeRelativePath', () => {
  it.each([
    ['a.jpg', 'a.jpg'],
    ['cats/a.jpg', 'cats/a.jpg'],
    ['cats\\a.jpg', 'cats/a.jpg'],
    ['a//b/./c.jpg', 'a/b/c.jpg'],
    ['cats/', 'cats'],
    [' sp /x. ', 'sp/x'],
    ['a/con/x.jpg', 'a/_con/x.jpg'],
    ['ab:c.jpg', 'ab_c.jpg'],
    ['.git/config', '_git/config'],
    ['...', '_'],
    ['子猫/🐈.jpg', '子猫/🐈.jpg'],
  ])('%j → %j', (name, safe) => {
    expect(safeRelativePath(name)).toBe(safe);
  });

  it.each([
    ['../x.jpg', '".." would leave'],
    ['a/../../x.jpg', '".." would leave'],
    ['a/ .. /x.jpg', '".." would leave'],
    ['..', '".." would leave'],
    ['..\\x', '".." would leave'],
    ['a\\..\\..\\x', '".." would leave'],
    ['/etc/x', 'absolute'],
    ['/', 'absolute'],
    ['C:\\x', 'absolute'],
    ['c:x.jpg', 'absolute'],
    ['a:b.jpg', 'absolute'],
    ['C:/x', 'absolute'],
    ['\\\\server\\share\\x', 'absolute'],
    ['x\0.jpg', 'NUL'],
    ['', 'nothing usable'],
    ['   ', 'nothing usable'],
    ['./', 'nothing usable'],
  ])('refuses %j', (name, why) => {
    const context = { source: 'urls.txt', line: 3, url: 'https://***@h/x' };
    const error = caught(() => safeRelativePath(name, context));
    expect(error.code).toBe('UNSAFE_NAME');
    expect(error.message).toContain('urls.txt:3: unsafe name');
    expect(error.message).toContain(why);
    expect(error).toMatchObject(context);
  });

  it('names no location when given no context', () => {
    expect(caught(() => safeRelativePath('../x')).message).toBe('unsafe name "../x": ".." would leave the output folder');
  });
});

describe('resolveInside', () => {
  const out = path.resolve('/tmp/imgdl-out');

  it.each([
    ['a.jpg', path.join(out, 'a.jpg')],
    ['cats/a.jpg', path.join(out, 'cats', 'a.jpg')],
  ])('%s stays inside', (rel, full) => {
    expect(resolveInside(out, rel)).toBe(full);
  });

  it('resolves a relative output folder against the working directory', () => {
    expect(resolveInside('out', 'a.jpg')).toBe(path.resolve('out', 'a.jpg'));
  });

  it('works when the output folder is the root', () => {
    expect(resolveInside(path.parse(out).root, 'a.jpg')).toBe(path.join(path.parse(out).root, 'a.jpg'));
  });

  it.each([['../x.jpg'], ['a/../../x.jpg'], ['/etc/passwd'], [''], ['.'], ['../imgdl-out-evil/x.jpg']])('refuses %j', (rel) => {
    expect(caught(() => resolveInside(out, rel)).code).toBe('UNSAFE_NAME');
  });
});

describe('splitExt', () => {
  it.each([
    ['a/b/x.tar.jpg', 'a/b/x.tar', '.jpg'],
    ['x.jpg', 'x', '.jpg'],
    ['x', 'x', ''],
    ['x.', 'x.', ''],
    ['.bashrc', '.bashrc', ''],
    ['dir/.hidden', 'dir/.hidden', ''],
    ['a.b/c', 'a.b/c', ''],
    ['C:\\out\\x.png', 'C:\\out\\x', '.png'],
  ])('%s → %s + %s', (relPath, stem, ext) => {
    expect(splitExt(relPath)).toEqual({ stem, ext });
  });
});

describe('NameRegistry', () => {
  const a = 'https://h.example/a/x.jpg?v=1';
  const b = 'https://h.example/b/x.jpg?v=2';

  it('gives different URLs with the same name distinct names', () => {
    const names = new NameRegistry();
    expect(names.claim('x.jpg', a)).toBe('x.jpg');
    expect(names.claim('x.jpg', b)).toBe(`x-${hex(b)}.jpg`);
  });

  it('is deterministic across fresh registries fed the same order', () => {
    const claims: [string, string][] = [
      ['x.jpg', a],
      ['x.jpg', b],
      ['X.JPG', 'https://h.example/c'],
      ['cats/x.jpg', a],
      ['x.jpg', 'https://h.example/d'],
    ];
    const run = (): string[] => {
      const names = new NameRegistry();
      return claims.map(([rel, url]) => names.claim(rel, url));
    };
    const first = run();
    expect(run()).toEqual(first);
    expect(new Set(first.map((name) => name.toLowerCase())).size).toBe(claims.length);
  });

  it('gives the same URL the same name every time it asks', () => {
    const names = new NameRegistry();
    expect(names.claim('x.jpg', a)).toBe('x.jpg');
    expect(names.claim('x.jpg', b)).toBe(`x-${hex(b)}.jpg`);
    expect(names.claim('x.jpg', a)).toBe('x.jpg');
    expect(names.claim('x.jpg', b)).toBe(`x-${hex(b)}.jpg`);
  });

  it.each([
    ['case', 'X.JPG', 'x.jpg'],
    ['case in folders', 'Cats/x.jpg', 'cats/X.jpg'],
    ['Unicode normalisation', 'e\u0301.jpg', '\u00e9.jpg'],
  ])('treats names differing only by %s as the same file', (_, first, second) => {
    const names = new NameRegistry();
    expect(names.claim(first, a)).toBe(first);
    expect(names.has(second)).toBe(true);
    expect(names.claim(second, b)).not.toBe(second);
    expect(names.claim(second, b).toLowerCase()).not.toBe(first.toLowerCase());
  });

  it('appends more hex when the hashed alternative is taken too', () => {
    const names = new NameRegistry();
    names.claim('x.jpg', a);
    names.claim(`x-${hex(b)}.jpg`, 'https://h.example/someone-else');
    expect(names.claim('x.jpg', b)).toBe(`x-${hex(b, 9)}.jpg`);
  });

  it('keeps an alternative within MAX_NAME_BYTES, extension and folder intact', () => {
    const long = `cats/${'猫'.repeat(64)}.jpg`; // 192 + 4 bytes in the last segment
    const names = new NameRegistry();
    names.claim(long, a);
    const other = names.claim(long, b);
    expect(other).toMatch(new RegExp(`^cats/猫+-${hex(b)}\\.jpg$`));
    expect(bytes(other.slice('cats/'.length))).toBeLessThanOrEqual(MAX_NAME_BYTES);
  });

  it('adds the hash after a name without extension', () => {
    const names = new NameRegistry();
    names.claim('photo', a);
    expect(names.claim('photo', b)).toBe(`photo-${hex(b)}`);
  });

  it('reports unclaimed names as free', () => {
    expect(new NameRegistry().has('x.jpg')).toBe(false);
  });

  it('tells, without claiming, which name of a chain a URL holds or would get', () => {
    const names = new NameRegistry();
    names.claim('x.jpg', a);
    expect(names.find('x.jpg', a)).toMatchObject({ name: 'x.jpg', own: true });
    expect(names.find('x.jpg', b)).toMatchObject({ name: `x-${hex(b)}.jpg`, own: false });
    expect(names.has(`x-${hex(b)}.jpg`)).toBe(false);
    names.claim('x.jpg', b);
    expect(names.find('x.jpg', b)).toMatchObject({ name: `x-${hex(b)}.jpg`, own: true });
    expect(names.size).toBe(2);
  });

  it('keeps a million names in about 15 bytes each', () => {
    const names = new NameRegistry();
    for (let i = 0; i < 1_000_000; i++) names.claim(`${i}.jpg`, `https://h.example/${i}.jpg`);
    expect(names.size).toBe(1_000_000);
    expect(names.byteLength / names.size).toBeLessThanOrEqual(18);
  });
});
