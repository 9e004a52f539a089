import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freesAtOnce, measure, SpentOutputs, type Contender } from '../src/bench/measure.js';

const temps: string[] = [];
afterEach(async () => {
  for (const dir of temps.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'imgdl-measure-test-'));
  temps.push(dir);
  return dir;
}

/** A command that writes `files` files of 10 bytes into its folder, as a download would. */
function writer(files: number): Contender {
  const script = `const fs=require('fs');for(let i=1;i<=${files};i++)fs.writeFileSync(process.argv[1]+'/'+i+'.jpg','0123456789')`;
  return { name: `writes ${files}`, argv: (out) => [process.execPath, '-e', script, out], saves: true };
}

/** Every file below `dir`, counted. */
async function filesBelow(dir: string): Promise<number> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).length;
}

describe('the suite keeps runs from paying for the deletions of the runs before', () => {
  it('puts a folder of many files aside until the suite ends, checked first', async () => {
    const root = await tempDir();
    const spent = new SpentOutputs(root, { from: 5, atOnce: false });
    const rows = await measure('test', [writer(6)], 2, { files: 6, bytes: 60 }, spent);
    expect(rows[0]).toMatchObject({ name: 'writes 6', incomplete: 0 });
    expect(rows[0]!.walls).toHaveLength(2);
    // Both runs' folders, whole, beside each other until clear().
    const [aside] = await fs.readdir(root);
    expect(await fs.readdir(path.join(root, aside!))).toEqual(expect.arrayContaining(['1', '2']));
    expect(await filesBelow(root)).toBe(12);
    await spent.clear();
    expect(await fs.readdir(root)).toEqual([]);
  });

  it('deletes a folder of few files at once, and any folder where deleted files are free at once', async () => {
    const root = await tempDir();
    const few = new SpentOutputs(root, { from: 5, atOnce: false });
    await measure('test', [writer(4)], 1, { files: 4, bytes: 40 }, few);
    expect(await fs.readdir(root)).toEqual([]);
    const tmpfs = new SpentOutputs(root, { from: 5, atOnce: true });
    await measure('test', [writer(6)], 1, { files: 6, bytes: 60 }, tmpfs);
    expect(await fs.readdir(root)).toEqual([]);
  });

  it('tells tmpfs from a disk by the type statfs gives', async () => {
    expect(freesAtOnce(0x01021994)).toBe(true);
    expect(freesAtOnce(0x01021994n)).toBe(true);
    // ext4's, the disk of this kind of machine.
    expect(freesAtOnce(0xef53)).toBe(false);
  });
});
