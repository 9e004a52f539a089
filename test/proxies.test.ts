/**
 * Downloads through a real forward proxy (Debian's tinyproxy), as users run
 * them: the built CLI, `--proxy` or the environment's variables, HTTPS
 * origins with a private CA (fixtures/tls). https targets must go through a
 * CONNECT tunnel, counted in tinyproxy's log; http targets as absolute-URL
 * requests; a proxy that wants credentials or is down must be named as the
 * culprit, not the server behind it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../src/bench/redis.js';
import { generatedImage, type FixtureServer } from '../src/dev/fixture-server.js';
import { proxyFor, proxySettings, toProxy } from '../src/http/proxy.js';
import { collect, ROOT, runCli, serve, tempDir, type CliRun } from './helpers.js';
import { startTinyproxy } from './tinyproxy.js';

const TLS = path.join(ROOT, 'fixtures/tls');
const CA = path.join(TLS, 'ca.pem');
const BYTES = 3_000;

/** No proxy variable from the machine running the tests: each test sets the ones it means. */
const NO_PROXY_ENV = {
  HTTPS_PROXY: undefined,
  https_proxy: undefined,
  HTTP_PROXY: undefined,
  http_proxy: undefined,
  NO_PROXY: undefined,
  no_proxy: undefined,
};

/** An HTTPS fixture server whose certificate (for 127.0.0.1) is signed by fixtures/tls/ca.pem. */
async function serveHttps(): Promise<FixtureServer> {
  const [key, cert] = await Promise.all([fs.readFile(path.join(TLS, 'server.key')), fs.readFile(path.join(TLS, 'server.pem'))]);
  return serve({ tls: { key, cert } });
}

/** `host:port` of a server, as a CONNECT names it. */
const authority = (server: FixtureServer): string => new URL(server.origin).host;

/** Runs the CLI with no proxy variables but those in `env`. */
function imgdl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runCli(args, { env: { ...NO_PROXY_ENV, ...env } });
}

/** The failures a run logged on stderr: `{ code, message }` of each item's error. */
function failures(run: CliRun): Array<{ code: string; message: string }> {
  return run.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { error?: { code: string; message: string } })
    .flatMap((entry) => (entry.error ? [entry.error] : []));
}

/** Expects `out` to hold exactly `names`, each the generated png of {@link BYTES}, byte for byte. */
async function expectImages(out: string, names: string[]): Promise<void> {
  expect((await fs.readdir(out)).sort()).toEqual([...names].sort());
  for (const name of names) expect((await fs.readFile(path.join(out, name))).equals(generatedImage('png', BYTES)), name).toBe(true);
}

describe('https through a proxy', () => {
  it('tunnels every https download through CONNECT with --proxy and --cacert, bytes intact', async () => {
    const proxy = await startTinyproxy();
    // One origin per file: keep-alive could otherwise carry two downloads through one tunnel.
    const servers = await Promise.all([serveHttps(), serveHttps(), serveHttps()]);
    const out = await tempDir();
    const urls = servers.map((server, i) => server.url(`/gen/${i}.png?bytes=${BYTES}`));
    const run = await imgdl([...urls, '-o', out, '--proxy', proxy.url, '--cacert', CA]);
    expect(run.code, run.stderr).toBe(0);
    await expectImages(out, ['0.png', '1.png', '2.png']);
    expect((await proxy.connects()).sort()).toEqual(servers.map(authority).sort());
    expect(servers.map((server) => server.stats.requests)).toEqual([1, 1, 1]);
  });

  it.each(['HTTPS_PROXY', 'https_proxy'])('tunnels through the proxy named by %s', async (variable) => {
    const proxy = await startTinyproxy();
    const server = await serveHttps();
    const out = await tempDir();
    const run = await imgdl([server.url(`/gen/env.png?bytes=${BYTES}`), '-o', out, '--cacert', CA], { [variable]: proxy.url });
    expect(run.code, run.stderr).toBe(0);
    await expectImages(out, ['env.png']);
    expect(await proxy.connects()).toEqual([authority(server)]);
  });

  it('goes straight to a host in NO_PROXY, and through the proxy otherwise', async () => {
    const proxy = await startTinyproxy();
    const server = await serveHttps();
    const env = { HTTPS_PROXY: proxy.url, no_proxy: 'example.com, 127.0.0.1' };
    const direct = await imgdl([server.url(`/gen/direct.png?bytes=${BYTES}`), '-o', await tempDir(), '--cacert', CA], env);
    expect(direct.code, direct.stderr).toBe(0);
    expect(await proxy.requests()).toEqual([]);
    const proxied = await imgdl([server.url(`/gen/proxied.png?bytes=${BYTES}`), '-o', await tempDir(), '--cacert', CA], {
      ...env,
      no_proxy: 'example.com',
    });
    expect(proxied.code, proxied.stderr).toBe(0);
    expect(await proxy.connects()).toEqual([authority(server)]);
  });

  it('skips verification of the server behind the tunnel with -k', async () => {
    const proxy = await startTinyproxy();
    const server = await serveHttps();
    const out = await tempDir();
    const run = await imgdl([server.url(`/gen/k.png?bytes=${BYTES}`), '-o', out, '--proxy', proxy.url, '-k']);
    expect(run.code, run.stderr).toBe(0);
    await expectImages(out, ['k.png']);
    expect(await proxy.connects()).toEqual([authority(server)]);
  });

  it('checks the certificate of the server behind the tunnel: without --cacert or -k, a private CA fails', async () => {
    const proxy = await startTinyproxy();
    const server = await serveHttps();
    const run = await imgdl([server.url('/gen/x.png'), '-o', await tempDir(), '--proxy', proxy.url, '--retries', '0']);
    expect(run.code).toBe(1);
    expect(failures(run)).toEqual([{ code: 'NETWORK', message: expect.stringMatching(/certificate/) }]);
    expect(await proxy.connects()).toEqual([authority(server)]);
    expect(server.stats.requests).toBe(0);
  });
});

describe('http through a proxy', () => {
  it.each([
    ['--proxy', (url: string) => ({ args: ['--proxy', url], env: {} })],
    ['HTTP_PROXY', (url: string) => ({ args: [], env: { HTTP_PROXY: url, HTTPS_PROXY: url } })],
  ])('sends http targets as absolute-URL requests, never CONNECT, next to tunnelled https ones (%s)', async (_how, setting) => {
    const proxy = await startTinyproxy();
    const plain = await serve();
    const secure = await serveHttps();
    const out = await tempDir();
    const { args, env } = setting(proxy.url);
    const urls = [plain.url(`/gen/plain.png?bytes=${BYTES}`), secure.url(`/gen/secure.png?bytes=${BYTES}`)];
    const run = await imgdl([...urls, '-o', out, '--cacert', CA, ...args], env);
    expect(run.code, run.stderr).toBe(0);
    await expectImages(out, ['plain.png', 'secure.png']);
    expect(await proxy.requests()).toEqual(
      expect.arrayContaining([
        { method: 'GET', target: urls[0] },
        { method: 'CONNECT', target: authority(secure) },
      ]),
    );
    expect(await proxy.requests()).toHaveLength(2);
    expect(plain.stats.requests).toBe(1);
  });
});

describe('proxy settings', () => {
  it('sends every request of a library run through options.proxy', async () => {
    const server = await serve();
    const proxy = await startTinyproxy();
    const urls = [server.url('/gen/a.jpg'), server.url('/gen/b.jpg')];
    const records = await collect(urls, { out: await tempDir(), proxy: proxy.url });
    expect(records.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect((await proxy.requests()).map((r) => `${r.method} ${r.target}`).sort()).toEqual(urls.map((url) => `GET ${url}`).sort());
    expect(server.stats.requests).toBe(2);
  });

  it('uses HTTP_PROXY from the environment by default, and not for NO_PROXY hosts or with --no-proxy', async () => {
    const server = await serve();
    const proxy = await startTinyproxy();
    const env = { HTTP_PROXY: proxy.url };
    const byEnv = await imgdl([server.url('/gen/env.jpg'), '-o', await tempDir()], env);
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const seen = async (): Promise<string[]> => (await proxy.requests()).map((r) => r.target);
    expect(await seen()).toEqual([server.url('/gen/env.jpg')]);

    const excluded = await imgdl([server.url('/gen/direct.jpg'), '-o', await tempDir()], { ...env, NO_PROXY: '127.0.0.1' });
    const refused = await imgdl([server.url('/gen/flag.jpg'), '-o', await tempDir(), '--no-proxy'], env);
    expect([excluded.code, refused.code]).toEqual([0, 0]);
    expect(await seen()).toHaveLength(1);
    expect(server.stats.requests).toBe(3);
  });

  it('names a malformed proxy variable as a usage error', async () => {
    const run = await imgdl(['http://127.0.0.1:9/a.jpg', '-o', await tempDir()], { HTTP_PROXY: 'notaurl' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('HTTP_PROXY (environment)');
  });
});

describe('a proxy that wants credentials', () => {
  // tinyproxy's config takes letters, digits, '-', '.' and '_' only, so nothing here needs percent-encoding.
  const basicAuth = { user: 'agent', password: 's3cret' };
  /** The proxy's URL with `user:password@`. */
  const withCredentials = (url: string, password = basicAuth.password): string =>
    url.replace('http://', `http://${basicAuth.user}:${password}@`);

  it('gets them from user:pass@ in --proxy, on the CONNECT and on absolute-URL requests', async () => {
    const proxy = await startTinyproxy({ basicAuth });
    const plain = await serve();
    const secure = await serveHttps();
    const out = await tempDir();
    const urls = [plain.url(`/gen/plain.png?bytes=${BYTES}`), secure.url(`/gen/secure.png?bytes=${BYTES}`)];
    const run = await imgdl([...urls, '-o', out, '--cacert', CA, '--proxy', withCredentials(proxy.url)]);
    expect(run.code, run.stderr).toBe(0);
    await expectImages(out, ['plain.png', 'secure.png']);
    expect(await proxy.connects()).toEqual([authority(secure)]);
  });

  it('fails with PROXY_AUTH naming the proxy, tried once, when given none', async () => {
    const proxy = await startTinyproxy({ basicAuth });
    const plain = await serve();
    const secure = await serveHttps();
    const urls = [plain.url('/gen/plain.png'), secure.url('/gen/secure.png')];
    const run = await imgdl([...urls, '-o', await tempDir(), '--cacert', CA, '--proxy', proxy.url, '--retries', '3', '--retry-delay', '1']);
    expect(run.code).toBe(1);
    const failure = { code: 'PROXY_AUTH', message: expect.stringContaining(`proxy ${proxy.url} asks for credentials (HTTP 407)`) };
    expect(failures(run)).toEqual([failure, failure]);
    // Not retried: one CONNECT for the https target, one request for the http one.
    expect(await proxy.connects()).toEqual([authority(secure)]);
    expect(await proxy.requests()).toHaveLength(2);
    expect(plain.stats.requests + secure.stats.requests).toBe(0);
  });

  it('fails with PROXY_AUTH naming the proxy, password redacted, tried once, when the password is wrong', async () => {
    const proxy = await startTinyproxy({ basicAuth });
    const secure = await serveHttps();
    const given = withCredentials(proxy.url, 'wrong-secret');
    const run = await imgdl([
      secure.url('/gen/secure.png'),
      '-o',
      await tempDir(),
      '--cacert',
      CA,
      '--proxy',
      given,
      '--retries',
      '3',
      '--retry-delay',
      '1',
    ]);
    expect(run.code).toBe(1);
    // tinyproxy 1.11 answers wrong credentials with 401 rather than 407; to a CONNECT, either is the proxy's.
    expect(failures(run)).toEqual([
      {
        code: 'PROXY_AUTH',
        message: expect.stringContaining(`proxy http://***@127.0.0.1:${proxy.port} refused the credentials in its URL (HTTP 40`),
      },
    ]);
    expect(run.stderr).not.toContain('wrong-secret');
    expect(await proxy.connects()).toEqual([authority(secure)]);
    expect(secure.stats.requests).toBe(0);
  });
});

describe('a proxy that is down', () => {
  it.each(['http', 'https'])('is named in the failure of an %s target, not the server behind it', async (scheme) => {
    const server = scheme === 'https' ? await serveHttps() : await serve();
    const down = `http://127.0.0.1:${await freePort()}`;
    const run = await imgdl([server.url('/gen/a.png'), '-o', await tempDir(), '--cacert', CA, '--proxy', down, '--retries', '0']);
    expect(run.code).toBe(1);
    expect(failures(run)).toEqual([
      { code: 'NETWORK', message: expect.stringContaining(`proxy ${down} refused the connection (ECONNREFUSED)`) },
    ]);
    expect(server.stats.requests).toBe(0);
  });

  it('is named for a proxy from the environment too', async () => {
    const server = await serveHttps();
    const down = `http://127.0.0.1:${await freePort()}`;
    const run = await imgdl([server.url('/gen/a.png'), '-o', await tempDir(), '--cacert', CA, '--retries', '0'], { https_proxy: down });
    expect(run.code).toBe(1);
    expect(failures(run)).toEqual([{ code: 'NETWORK', message: expect.stringContaining(`proxy ${down} refused the connection`) }]);
  });
});

describe('which proxy a request goes through', () => {
  const target = (url: string): URL => new URL(url);
  const via = (url: string, proxy: string | false | undefined, env: NodeJS.ProcessEnv): string | undefined => {
    const settings = proxySettings(proxy, env);
    return settings && proxyFor(target(url), settings)?.url.host;
  };

  it.each<[string, string, string | false | undefined, NodeJS.ProcessEnv, string | undefined]>([
    ['--proxy, for every target', 'https://a.example/x.png', 'http://p:1', { NO_PROXY: 'a.example' }, 'p:1'],
    ['--no-proxy, whatever the environment', 'https://a.example/x.png', false, { HTTPS_PROXY: 'http://p:1' }, undefined],
    ['HTTPS_PROXY for https', 'https://a.example/x.png', undefined, { HTTPS_PROXY: 'http://s:1', HTTP_PROXY: 'http://h:1' }, 's:1'],
    ['HTTP_PROXY for http', 'http://a.example/x.png', undefined, { HTTPS_PROXY: 'http://s:1', HTTP_PROXY: 'http://h:1' }, 'h:1'],
    ['HTTP_PROXY for https without HTTPS_PROXY', 'https://a.example/x.png', undefined, { HTTP_PROXY: 'http://h:1' }, 'h:1'],
    ['no proxy for http with HTTPS_PROXY alone', 'http://a.example/x.png', undefined, { HTTPS_PROXY: 'http://s:1' }, undefined],
    [
      'the lower-case variable first',
      'https://a.example/x.png',
      undefined,
      { https_proxy: 'http://lo:1', HTTPS_PROXY: 'http://up:1' },
      'lo:1',
    ],
    [
      'none for a NO_PROXY host',
      'https://a.example/x.png',
      undefined,
      { HTTPS_PROXY: 'http://s:1', NO_PROXY: 'b.example, a.example' },
      undefined,
    ],
    ['none for its subdomains', 'https://img.a.example/x.png', undefined, { HTTPS_PROXY: 'http://s:1', no_proxy: '.a.example' }, undefined],
    [
      'a proxy for a host that only ends like it',
      'https://aa.example/x.png',
      undefined,
      { HTTPS_PROXY: 'http://s:1', NO_PROXY: 'a.example' },
      's:1',
    ],
    [
      'none on the NO_PROXY port',
      'https://a.example/x.png',
      undefined,
      { HTTPS_PROXY: 'http://s:1', NO_PROXY: 'a.example:443' },
      undefined,
    ],
    ['a proxy on another port', 'https://a.example:8443/x.png', undefined, { HTTPS_PROXY: 'http://s:1', NO_PROXY: 'a.example:443' }, 's:1'],
    ['none for anything with NO_PROXY=*', 'https://a.example/x.png', undefined, { HTTPS_PROXY: 'http://s:1', NO_PROXY: '*' }, undefined],
  ])('%s', (_label, url, proxy, env, expected) => {
    expect(via(url, proxy, env)).toBe(expected);
  });

  it('keeps credentials out of the proxy URL and shows them as ***, sending them as Basic', () => {
    const proxy = toProxy('http://agent:p%40ss@proxy.lan:3128');
    expect([proxy.url.href, proxy.shown]).toEqual(['http://proxy.lan:3128/', 'http://***@proxy.lan:3128']);
    expect(proxy.authorization).toBe(`Basic ${Buffer.from('agent:p@ss').toString('base64')}`);
    expect(toProxy('http://proxy.lan:3128').authorization).toBeUndefined();
  });
});
