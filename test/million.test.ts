/**
 * Long lists: each URL downloaded once however it is listed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { planDownload, type PlannedItem } from '../src/dry-run.js';
import type { Options } from '../src/options.js';
import type { SourceEntry } from '../src/download.js';
import { tempDir } from './helpers.js';

async function plan(source: SourceEntry[], options: Options): Promise<PlannedItem[]> {
  const planned: PlannedItem[] = [];
  for await (const item of planDownload(source, options)) planned.push(item);
  return planned;
}

const A = 'http://h.example/a/x.jpg';
const B = 'http://h.example/b/x.jpg';

describe('a URL listed more than once', () => {
  it.each<[string, SourceEntry[], Array<[PlannedItem['status'], string | null, string]>]>([
    ['twice', [A, A], [['download', 'x.jpg', ''], ['skipped', null, 'duplicate']]],
    ['with a NAME, then without', [{ url: A, name: 'mine.jpg' }, A], [['download', 'mine.jpg', ''], ['skipped', null, 'duplicate']]],
    ['without a NAME, then with one', [A, { url: A, name: 'mine.jpg' }], [['download', 'x.jpg', ''], ['skipped', null, 'duplicate']]],
    [
      'after another URL took its name',
      [A, B, B, A],
      [['download', 'x.jpg', ''], ['download', expect.stringMatching(/^x-[0-9a-f]{8}\.jpg$/) as unknown as string, ''], ['skipped', null, 'duplicate'], ['skipped', null, 'duplicate']],
    ],
    ['written another way', ['HTTP://H.EXAMPLE/a/x.jpg', A], [['download', 'x.jpg', ''], ['skipped', null, 'duplicate']]],
    [
      'after its NAME was refused',
      [{ url: A, name: '../x.jpg' }, A],
      [['failed', null, expect.stringContaining('UNSAFE_NAME') as unknown as string], ['skipped', null, 'duplicate']],
    ],
  ])('%s is planned once', async (_label, source, expected) => {
    const out = await tempDir();
    const planned = await plan(source, { out });
    expect(planned.map((p) => [p.status, p.path, p.reason])).toEqual(expected);
  });

  it('is planned once when an earlier manifest records it as done', async () => {
    const out = await tempDir();
    const manifest = path.join(out, 'run.jsonl');
    await fs.writeFile(manifest, JSON.stringify({ url: A, status: 'ok', path: 'x.jpg' }) + '\n');
    const planned = await plan([A, A, B], { out, manifest });
    expect(planned.map((p) => [p.status, p.reason])).toEqual([['skipped', 'manifest'], ['skipped', 'duplicate'], ['download', '']]);
  });

  it('keeps names that differ only in case apart, as a folding file system would', async () => {
    const out = await tempDir();
    const planned = await plan(['http://h.example/X.jpg', 'http://h.example/x.jpg'], { out });
    expect(planned[0]?.path).toBe('X.jpg');
    expect(planned[1]?.path).toMatch(/^x-[0-9a-f]{8}\.jpg$/);
  });
});

describe('the dry run', () => {
  it('finds existing files from one listing of their folder, and checks a near match', async () => {
    const out = await tempDir();
    await fs.mkdir(path.join(out, 'sub'));
    await fs.writeFile(path.join(out, 'sub', 'here.jpg'), 'x');
    await fs.writeFile(path.join(out, 'Upper.jpg'), 'x');
    const planned = await plan(
      [
        { url: 'http://h.example/1.jpg', name: 'sub/here.jpg' },
        { url: 'http://h.example/2.jpg', name: 'sub/absent.jpg' },
        // The same name but for its case: the listing's folded match is confirmed on the file system itself.
        'http://h.example/upper.jpg',
      ],
      { out },
    );
    const caseSensitive = await fs.access(path.join(out, 'upper.jpg')).then(() => false, () => true);
    expect(planned.map((p) => p.reason)).toEqual(['exists', '', caseSensitive ? '' : 'exists']);
  });
});
