/**
 * The two seams, each driven by a test double through the real pipeline
 * against a loopback server: an in-memory source whose extra fields reach
 * the records, and an in-memory sink that records what it is asked and
 * receives the bytes. Nothing in item/ or run/ knows either double.
 */
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import { generatedImage } from '../src/dev/fixture-server.js';
import type { SourceItem } from '../src/input/source.js';
import { resolveOptions, type Options } from '../src/options.js';
import type { BodyStart, KeepFacts, Resume, Sink, SinkEntry, SinkHandler, SinkTarget } from '../src/output/sink.js';
import type { ItemResult } from '../src/record/record.js';
import { createRunContext, downloadWith } from '../src/run/download.js';
import { listFiles, serve, tempDir } from './helpers.js';

/** Items with fields, handed over asynchronously, as a CSV or JSONL reader would. */
class MemorySource implements AsyncIterable<SourceItem> {
  constructor(readonly items: SourceItem[]) {}
  async *[Symbol.asyncIterator](): AsyncGenerator<SourceItem> {
    for (const item of this.items) yield item;
  }
}

/** Keeps bodies in a map, and notes every call it gets (consecutive writes as one). */
class MemorySink implements Sink {
  readonly calls: string[] = [];
  readonly kept = new Map<string, Buffer>();
  /** What each commit was told of the body it kept. */
  readonly facts = new Map<string, KeepFacts>();
  constructor(readonly already: ReadonlySet<string> = new Set()) {}
  note(call: string): void {
    if (call.startsWith('write') && this.calls.at(-1) === call) return;
    this.calls.push(call);
  }
  async has(target: SinkTarget, relPath?: string): Promise<boolean> {
    const name = relPath ?? target.relPath;
    this.note(`has ${name}`);
    return this.already.has(name);
  }
  async resumable(target: SinkTarget): Promise<Resume | undefined> {
    this.note(`resumable ${target.relPath}`);
    return undefined;
  }
  open(target: SinkTarget, resume: Resume | undefined): SinkEntry {
    this.note(`open ${target.relPath}${resume ? ' resuming' : ''}`);
    return new MemoryEntry(this, target.relPath);
  }
}

class MemoryEntry implements SinkEntry {
  readonly #chunks: Buffer[] = [];
  constructor(
    readonly sink: MemorySink,
    readonly name: string,
  ) {}
  async begin(start: BodyStart, _handler: SinkHandler): Promise<void> {
    this.sink.note(`begin ${this.name} ${start.expectedTotal ?? '?'}`);
  }
  write(chunk: Buffer): boolean {
    this.sink.note(`write ${this.name}`);
    this.#chunks.push(chunk);
    return true;
  }
  async commit(relPath: string, facts: KeepFacts): Promise<string> {
    this.sink.note(`commit ${relPath}`);
    this.sink.facts.set(relPath, facts);
    this.sink.kept.set(relPath, Buffer.concat(this.#chunks));
    return relPath;
  }
  async abort(keepResumable: boolean): Promise<void> {
    this.sink.note(`abort ${this.name}${keepResumable ? ' keeping' : ''}`);
  }
}

async function run(items: SourceItem[], sink: MemorySink, options: Options): Promise<ItemResult[]> {
  const ctx = await createRunContext(resolveOptions({ concurrency: 1, retries: 0, ...options }));
  ctx.sink = sink;
  const results: ItemResult[] = [];
  for await (const result of downloadWith(new MemorySource(items), ctx)) results.push(result);
  return results;
}

describe('the source and sink seams', () => {
  it("carries a source item's fields to its record, and keeps small and large bodies alike in the sink", async () => {
    const server = await serve();
    const out = await tempDir();
    const sink = new MemorySink();
    const results = await run(
      [
        { url: server.url('/gen/small.jpg?bytes=500'), fields: { sku: 'A-1', row: 2 } },
        { url: server.url('/gen/large.png?bytes=300000'), name: 'big/one.png', fields: { sku: 'B-2' } },
        { url: server.url('/gen/plain.jpg?bytes=900') },
      ],
      sink,
      { out },
    );
    expect(results.map((r) => [r.status, r.path, r.fields])).toEqual([
      ['ok', 'small.jpg', { sku: 'A-1', row: 2 }],
      ['ok', 'big/one.png', { sku: 'B-2' }],
      ['ok', 'plain.jpg', undefined],
    ]);
    expect('fields' in results[2]!).toBe(false);
    expect(sink.kept.get('small.jpg')).toEqual(generatedImage('jpg', 500));
    expect(sink.kept.get('big/one.png')).toEqual(generatedImage('png', 300_000));
    // The sink learns each body's list position, its row and what its bytes are.
    const small = sink.facts.get('small.jpg')!;
    expect([small.position, small.item.fields, small.imageType]).toEqual([0, { sku: 'A-1', row: 2 }, 'jpeg']);
    expect([small.width, small.height]).toEqual([small.originalWidth, small.originalHeight]);
    expect(small.width).toBeGreaterThan(0);
    expect([sink.facts.get('big/one.png')!.position, sink.facts.get('plain.jpg')!.position]).toEqual([1, 2]);
    // The next item may begin once this body is received, before it is committed.
    expect(sink.calls.filter((call) => call.includes('small.jpg')).slice(0, 6)).toEqual([
      'has small.jpg',
      'resumable small.jpg',
      'open small.jpg',
      'begin small.jpg 500',
      'write small.jpg',
      'commit small.jpg',
    ]);
    // A sink other than the folder's leaves the output folder alone.
    expect(await listFiles(out)).toEqual([]);
  });

  it('aborts the entry of a body it must not keep, and asks the sink what it holds', async () => {
    const server = await serve({
      handlers: [http.get('*/page.jpg', () => new HttpResponse('<html>not an image</html>', { headers: { 'content-type': 'text/html' } }))],
    });
    const sink = new MemorySink(new Set(['there.jpg']));
    const results = await run(
      [
        { url: server.url('/missing.jpg'), fields: { id: 1 } },
        { url: server.url('/page.jpg'), fields: { id: 2 } },
        { url: server.url('/gen/there.jpg'), fields: { id: 3 } },
      ],
      sink,
      { out: await tempDir() },
    );
    expect(results.map((r) => [r.status, r.error?.code ?? r.skipReason, r.fields])).toEqual([
      ['failed', 'HTTP_STATUS', { id: 1 }],
      ['failed', 'NOT_AN_IMAGE', { id: 2 }],
      ['skipped', 'exists', { id: 3 }],
    ]);
    expect(sink.calls).toEqual([
      'has missing.jpg',
      'resumable missing.jpg',
      'open missing.jpg',
      'abort missing.jpg',
      'has page.jpg',
      'resumable page.jpg',
      'open page.jpg',
      'begin page.jpg ?',
      'abort page.jpg',
      'has there.jpg',
    ]);
    expect(sink.kept.size).toBe(0);
  });
});
