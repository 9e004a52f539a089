import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { download } from '../src/run/download.js';
import { planDownload } from '../src/run/dry-run.js';
import { OptionError, resolveOptions } from '../src/options.js';
import { ROOT, tempDir } from './helpers.js';

/** Options resolved from a CA file that is gone by the time they are used: only a second resolve would read it. */
async function resolvedThenCaRemoved() {
  const dir = await tempDir();
  const ca = path.join(dir, 'ca.pem');
  await fs.copyFile(path.join(ROOT, 'fixtures/tls/ca.pem'), ca);
  const resolved = resolveOptions({ out: path.join(dir, 'out'), cacert: ca });
  await fs.rm(ca);
  return { resolved, ca };
}

describe('options are resolved once per run', () => {
  it('hands back, frozen and as it is, an object it resolved', () => {
    const resolved = resolveOptions({ concurrency: 4 });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveOptions(resolved)).toBe(resolved);
  });

  it('checks a copy again, since a copy may have been changed', () => {
    const resolved = resolveOptions({});
    expect(() => resolveOptions({ ...resolved, concurrency: 0 })).toThrow(OptionError);
    expect(resolveOptions({ concurrency: 4 })).not.toBe(resolveOptions({ concurrency: 4 }));
  });

  it('download() and planDownload() take resolved options without resolving them again', async () => {
    const { resolved, ca } = await resolvedThenCaRemoved();
    expect(() => resolveOptions({ cacert: ca })).toThrow(/cacert/);
    const planned = [];
    for await (const item of planDownload(['https://a.example/x.jpg'], resolved)) planned.push(item.status);
    expect(planned).toEqual(['download']);
    const records = [];
    for await (const record of download([], resolved)) records.push(record);
    expect(records).toEqual([]);
  });
});
