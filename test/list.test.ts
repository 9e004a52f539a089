import { describe, expect, it } from 'vitest';
import { caught } from './helpers.js';
import type { ErrorCode } from '../src/errors.js';
import { MAX_LINE_BYTES, itemsFromArgs, parseItemUrl, readList, redactUrl, type ListItem } from '../src/input/text-list.js';

async function* chunksOf(...chunks: (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

async function collect(input: AsyncIterable<Uint8Array | string>, source = 'urls.txt'): Promise<ListItem[]> {
  const items: ListItem[] = [];
  for await (const item of readList(input, source)) items.push(item);
  return items;
}

/** Items as the reader yields them, with the source filled in. */
function expected(...items: Omit<ListItem, 'source'>[]): ListItem[] {
  return items.map((item) => ({ ...item, source: 'urls.txt' }));
}

describe('readList', () => {
  it.each<[string, string, ListItem[]]>([
    ['URL only', 'https://a.example/x.jpg\n', expected({ url: 'https://a.example/x.jpg', line: 1 })],
    ['URL and NAME after spaces', 'https://a/x.jpg   cat.jpg\n', expected({ url: 'https://a/x.jpg', name: 'cat.jpg', line: 1 })],
    ['URL and NAME after a tab', 'https://a/x.jpg\tcats/a.jpg\n', expected({ url: 'https://a/x.jpg', name: 'cats/a.jpg', line: 1 })],
    ['NAME containing spaces', 'https://a/x.jpg \t my cat .jpg  \n', expected({ url: 'https://a/x.jpg', name: 'my cat .jpg', line: 1 })],
    ['surrounding whitespace trimmed', '   https://a/1  \n', expected({ url: 'https://a/1', line: 1 })],
    [
      'blank and # lines skipped, still counted',
      '\n# comment\n   \n  # indented comment\nhttps://a/1\n\t\nhttps://a/2 # not a comment\n',
      expected({ url: 'https://a/1', line: 5 }, { url: 'https://a/2', name: '# not a comment', line: 7 }),
    ],
    [
      'CRLF endings',
      'https://a/1\r\nhttps://a/2 n.jpg\r\n\r\n',
      expected({ url: 'https://a/1', line: 1 }, { url: 'https://a/2', name: 'n.jpg', line: 2 }),
    ],
    ['UTF-8 BOM at the start', '\uFEFFhttps://a/1\n', expected({ url: 'https://a/1', line: 1 })],
    ['last line without newline', 'https://a/1\nhttps://a/2', expected({ url: 'https://a/1', line: 1 }, { url: 'https://a/2', line: 2 })],
    ['only newlines', '\n\n\r\n', []],
    ['empty input', '', []],
    ['tab inside a NAME is text, not binary', 'https://a/1 a\tb.jpg', expected({ url: 'https://a/1', name: 'a\tb.jpg', line: 1 })],
    ['a written U+FFFD is text, not binary', 'https://a/\uFFFD.jpg', expected({ url: 'https://a/\uFFFD.jpg', line: 1 })],
  ])('%s', async (_, text, items) => {
    expect(await collect(chunksOf(text))).toEqual(items);
    expect(await collect(chunksOf(Buffer.from(text)))).toEqual(items);
  });

  const mixed = '\uFEFFhttps://a/猫.jpg  子猫 🐈.jpg\r\n# c\n\nhttps://b/é\nhttps://c/last';
  const mixedItems = expected(
    { url: 'https://a/猫.jpg', name: '子猫 🐈.jpg', line: 1 },
    { url: 'https://b/é', line: 4 },
    { url: 'https://c/last', line: 5 },
  );

  it('gives the same items however the bytes are split (mid-line, mid-character, mid-BOM, mid-CRLF)', async () => {
    const bytes = Buffer.from(mixed);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(await collect(chunksOf(bytes.subarray(0, cut), bytes.subarray(cut)))).toEqual(mixedItems);
    }
    const oneByteChunks = Array.from(bytes, (byte) => Uint8Array.of(byte));
    expect(await collect(chunksOf(...oneByteChunks))).toEqual(mixedItems);
  });

  it('reassembles a multi-byte character split across chunks', async () => {
    const cat = Buffer.from('猫'); // 3 bytes
    const items = await collect(chunksOf('https://a/', cat.subarray(0, 1), cat.subarray(1, 2), cat.subarray(2), '.jpg\n'));
    expect(items).toEqual(expected({ url: 'https://a/猫.jpg', line: 1 }));
  });

  it.each([
    ['in one chunk', 1 << 20],
    ['in 64 KiB chunks', 64 * 1024],
    ['in odd-sized chunks', 1000],
  ])('flags a 1 MB line too-long and still reads the next line (%s)', async (_, chunkSize) => {
    const text = Buffer.from(`https://a/${'x'.repeat(1 << 20)} name.jpg\nhttps://a/next\n`);
    const chunks: Buffer[] = [];
    for (let at = 0; at < text.length; at += chunkSize) chunks.push(text.subarray(at, at + chunkSize));
    const items = await collect(chunksOf(...chunks));
    expect(items).toHaveLength(2);
    expect(items[0]).toMatchObject({ line: 1, problem: 'too-long' });
    expect(items[0]?.url.startsWith('https://a/xxx')).toBe(true);
    expect(items[0]?.name).toBeUndefined();
    expect(items[1]).toEqual({ url: 'https://a/next', line: 2, source: 'urls.txt' });
  });

  it.each([
    ['exactly MAX_LINE_BYTES', MAX_LINE_BYTES, '\n', undefined],
    ['exactly MAX_LINE_BYTES before CRLF', MAX_LINE_BYTES, '\r\n', undefined],
    ['one byte over', MAX_LINE_BYTES + 1, '\n', 'too-long'],
    ['one byte over, no newline', MAX_LINE_BYTES + 1, '', 'too-long'],
  ])('line length limit: %s', async (_, length, ending, problem) => {
    const line = `https://a/${'y'.repeat(length - 10)}`;
    for (const split of [1, MAX_LINE_BYTES, length]) {
      const bytes = Buffer.from(line + ending);
      const items = await collect(chunksOf(bytes.subarray(0, split), bytes.subarray(split)));
      expect(items).toHaveLength(1);
      expect(items[0]?.problem).toBe(problem);
    }
  });

  it('reads a 1 GiB line with no newline as one too-long item', async () => {
    const block = Buffer.alloc(1 << 20, 'z');
    async function* endless(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('https://a/');
      for (let i = 0; i < 1024; i++) yield block; // the same 1 MiB again: cheap to produce
    }
    const items = await collect(endless());
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ line: 1, problem: 'too-long' });
  });

  it.each([
    ['NUL byte', Buffer.from('https://a/\0x.jpg')],
    ['escape character', Buffer.from('https://a/\x1b[31m.jpg')],
    ['DEL', Buffer.from('https://a/\x7f.jpg')],
    ['lone CR inside the line', Buffer.from('https://a/1\rhttps://a/2')],
    ['invalid UTF-8', Buffer.from([0x68, 0x74, 0x74, 0x70, 0xff, 0xfe, 0x2f])],
    ['truncated UTF-8 sequence', Buffer.concat([Buffer.from('https://a/'), Buffer.from('猫').subarray(0, 2)])],
  ])('flags %s as binary', async (_, bytes) => {
    const items = await collect(chunksOf(bytes, '\nhttps://a/ok\n'));
    expect(items[0]).toMatchObject({ line: 1, problem: 'binary' });
    expect(items[1]).toEqual({ url: 'https://a/ok', line: 2, source: 'urls.txt' });
  });

  it('yields the first item before the source has produced all 200,000 lines', async () => {
    const linesPerChunk = 1000;
    const total = 200_000;
    let pulled = 0;
    async function* source(): AsyncGenerator<string> {
      for (let chunk = 0; chunk < total / linesPerChunk; chunk++) {
        pulled++;
        let text = '';
        for (let i = 0; i < linesPerChunk; i++) text += `https://a.example/${chunk * linesPerChunk + i}.jpg\n`;
        yield text;
      }
    }
    const items = readList(source(), 'big.txt');
    const first = await items.next();
    expect(first.value).toEqual({ url: 'https://a.example/0.jpg', source: 'big.txt', line: 1 });
    expect(pulled).toBe(1);

    let count = 1;
    let last: ListItem | undefined;
    for await (const item of items) {
      count++;
      last = item;
    }
    expect(count).toBe(total);
    expect(last).toEqual({ url: `https://a.example/${total - 1}.jpg`, source: 'big.txt', line: total });
  });

  it('stops pulling the source when the consumer stops', async () => {
    let finished = false;
    async function* source(): AsyncGenerator<string> {
      try {
        for (let i = 0; ; i++) yield `https://a/${i}\n`;
      } finally {
        finished = true;
      }
    }
    for await (const item of readList(source(), 'x')) {
      if (item.line === 3) break;
    }
    expect(finished).toBe(true);
  });
});

describe('itemsFromArgs', () => {
  it('numbers arguments from 1, trims them, and flags the unusable', () => {
    expect(itemsFromArgs(['https://a/1', ' https://a/2 ', 'https://a/\x00', `https://a/${'x'.repeat(MAX_LINE_BYTES)}`])).toEqual([
      { url: 'https://a/1', source: 'argv', line: 1 },
      { url: 'https://a/2', source: 'argv', line: 2 },
      { url: 'https://a/\x00', source: 'argv', line: 3, problem: 'binary' },
      { url: `https://a/${'x'.repeat(MAX_LINE_BYTES)}`, source: 'argv', line: 4, problem: 'too-long' },
    ]);
  });
});

describe('parseItemUrl', () => {
  const item = (url: string, problem?: ListItem['problem']): ListItem => ({ url, source: 'urls.txt', line: 7, problem });

  it.each([
    ['http://a.example/x.jpg', 'http://a.example/x.jpg'],
    ['https://a.example/x.jpg?q=1#f', 'https://a.example/x.jpg?q=1#f'],
    ['HTTPS://A.EXAMPLE/x.jpg', 'https://a.example/x.jpg'],
    ['https://user:pw@a.example:8443/x.jpg', 'https://user:pw@a.example:8443/x.jpg'],
  ])('accepts %s', (text, href) => {
    expect(parseItemUrl(item(text)).href).toBe(href);
  });

  it.each<[string, ListItem, ErrorCode, string]>([
    ['a word', item('hello'), 'INVALID_URL', 'urls.txt:7: not a URL: "hello"'],
    ['a relative path', item('/a.jpg'), 'INVALID_URL', 'urls.txt:7: not a URL: "/a.jpg"'],
    ['a host without scheme', item('example.com/a.jpg'), 'INVALID_URL', 'urls.txt:7: not a URL: "example.com/a.jpg"'],
    [
      'ftp',
      item('ftp://x/a.jpg'),
      'UNSUPPORTED_SCHEME',
      'urls.txt:7: unsupported scheme "ftp:" in ftp://x/a.jpg (only http and https are fetched)',
    ],
    ['javascript', item('javascript:alert(1)'), 'UNSUPPORTED_SCHEME', 'urls.txt:7: unsupported scheme "javascript:"'],
    ['file', item('file:///etc/passwd'), 'UNSUPPORTED_SCHEME', 'urls.txt:7: unsupported scheme "file:"'],
    ['data', item('data:image/png;base64,AA'), 'UNSUPPORTED_SCHEME', 'urls.txt:7: unsupported scheme "data:"'],
    ['a too-long line', item('https://a/xxx', 'too-long'), 'INVALID_URL', `urls.txt:7: line is longer than ${MAX_LINE_BYTES} bytes`],
    [
      'a binary line',
      item('https://a/\0', 'binary'),
      'INVALID_URL',
      'urls.txt:7: line is not text (invalid UTF-8 or control characters): "https://a/\\u0000"',
    ],
  ])('rejects %s', (_, listItem, code, message) => {
    const error = caught(() => parseItemUrl(listItem));
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(error).toMatchObject({ source: 'urls.txt', line: 7 });
    expect(error.url).toBe(redactUrl(listItem.url));
  });

  it('redacts credentials and truncates long text in messages and details', () => {
    const secret = caught(() => parseItemUrl(item('ftp://me:s3cret@x/a.jpg')));
    expect(secret.message).not.toContain('s3cret');
    expect(secret.url).toBe('ftp://***@x/a.jpg');

    const long = caught(() => parseItemUrl(item(`nope-${'x'.repeat(5000)}`)));
    expect(long.message.length).toBeLessThan(400);
    expect(long.url?.length).toBeLessThanOrEqual(201);
  });

  it('reports a too-long list line with its line number', async () => {
    const items = await collect(chunksOf(`\n\n\n\n\n\n\n\nhttps://a/${'x'.repeat(100_000)}\n`));
    expect(caught(() => parseItemUrl(items[0]!)).message).toBe('urls.txt:9: line is longer than 65536 bytes');
  });
});

describe('redactUrl', () => {
  it.each<[string | URL, string]>([
    ['https://user:pass@host/x.jpg', 'https://***@host/x.jpg'],
    ['https://user@host/x.jpg', 'https://***@host/x.jpg'],
    ['http://u:p@ss@host/', 'http://***@host/'],
    ['http:u:p@host/x', 'http:***@host/x'],
    [new URL('https://u:p@h.example/x?y=1'), 'https://***@h.example/x?y=1'],
    ['https://host/a@b.jpg', 'https://host/a@b.jpg'],
    ['https://host/?mail=a@b', 'https://host/?mail=a@b'],
    ['https://host/x.jpg', 'https://host/x.jpg'],
    ['not a url', 'not a url'],
  ])('%s → %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });
});
