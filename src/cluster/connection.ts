/**
 * Reaching Redis: the queue URL, and the two kinds of connection BullMQ's
 * guide asks for ("Going to production"):
 *
 * - a producer's (enqueue, status), which fails fast: no offline queue, one
 *   try per command, no reconnection, so a user at a terminal gets an error
 *   instead of a hang;
 * - a worker's, which never gives up: `maxRetriesPerRequest: null`, commands
 *   queued while offline, reconnection with capped exponential backoff, so a
 *   Redis restart mid-run only pauses the workers.
 *
 * Both start with {@link preflight}: a Redis that cannot be reached at start is
 * a clear error, and one that may evict keys is refused.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ClusterError, describeError, type ClusterErrorCode } from '../errors.js';

// The error lives in errors.ts with the rest of the hierarchy; the cluster's modules and the CLI take it from here.
export { ClusterError, type ClusterErrorCode };

/** Where a queue lives: a parsed `--queue` URL. */
export interface QueueAddress {
  /** The URL as given, password masked, for messages. */
  shown: string;
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls: boolean;
}

/** The BullMQ queue's name; runs are kept apart by Redis database (`/DB`) or server. */
export const QUEUE_NAME = 'imgdl';

/**
 * Parses `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (`rediss://` for TLS).
 * Throws INVALID_QUEUE_URL naming what is wrong.
 */
export function parseQueueUrl(text: string): QueueAddress {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  const fail = (why: string): never => {
    throw new ClusterError('INVALID_QUEUE_URL', `invalid --queue ${JSON.stringify(text)}: ${why} (expected redis://HOST:PORT[/DB])`);
  };
  if (url === undefined) return fail('not a URL');
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return fail(`scheme ${url.protocol} is not redis: or rediss:`);
  if (url.hostname === '') return fail('no host');
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d{1,5}$/.test(dbText)) return fail(`database ${JSON.stringify(dbText)} is not a number`);
  if (url.search !== '' || url.hash !== '') return fail('no query or fragment is read');
  const masked = new URL(url.href);
  if (masked.password) masked.password = '***';
  return {
    shown: masked.href,
    // URL keeps IPv6 hosts in brackets; sockets want them bare.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    db: dbText === '' ? 0 : Number(dbText),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:',
  };
}

function base(address: QueueAddress): RedisOptions {
  return {
    host: address.host,
    port: address.port,
    db: address.db,
    ...(address.username === undefined ? {} : { username: address.username }),
    ...(address.password === undefined ? {} : { password: address.password }),
    ...(address.tls ? { tls: {} } : {}),
    connectTimeout: 5_000,
  };
}

/** Connection options for a producer (enqueue, status): every failure surfaces at once. */
export function producerOptions(address: QueueAddress): RedisOptions {
  return { ...base(address), enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: true };
}

/**
 * Delay before reconnection attempt `times` (1-based): 250 ms doubling to 10 s,
 * with ±20 % jitter so that many workers do not come back in step.
 */
export function reconnectDelayMs(times: number): number {
  const delay = Math.min(250 * 2 ** Math.min(times - 1, 10), 10_000);
  return Math.round(delay * (0.8 + Math.random() * 0.4));
}

/** Connection options for a worker: it waits out any outage, whatever its length. */
export function workerOptions(address: QueueAddress): RedisOptions {
  return { ...base(address), maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: reconnectDelayMs };
}

/**
 * Opens a producer connection, or throws REDIS_UNAVAILABLE with the cause
 * ("connect ECONNREFUSED 127.0.0.1:6390"). The caller closes it.
 */
export async function connectProducer(address: QueueAddress): Promise<Redis> {
  const client = new Redis(producerOptions(address));
  // The socket's own error (ECONNREFUSED, ENOTFOUND, ...) arrives as an event; connect() then only
  // rejects with "Connection is closed", which would hide it.
  let cause: unknown;
  client.on('error', (error: unknown) => (cause ??= error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw unavailable(address, cause ?? error);
  }
  return client;
}

/** True for an error that means the connection to Redis is down or was refused, rather than a command failing. */
export function isConnectionError(error: unknown): boolean {
  const text = `${(error as { code?: unknown })?.code ?? ''} ${(error as Error)?.message ?? String(error)}`;
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|LOADING/i.test(
    text,
  );
}

/**
 * Logs a worker's connection lost and regained, once per outage: ioredis and
 * BullMQ report every failed reconnection, and the worker waits them all out
 * (see {@link workerOptions}). Listens on `redis` itself; returns the
 * listener for the `error` events of the worker's other clients (its queue,
 * BullMQ's worker), which report the same outage.
 */
export function logOutages(redis: Redis, address: QueueAddress, log: Logger | undefined): (error: Error) => void {
  let outage = false;
  const onError = (error: Error): void => {
    if (!isConnectionError(error)) {
      log?.warn(`queue: ${describeError(error)}`);
      return;
    }
    if (!outage) log?.warn(`lost the connection to Redis at ${address.shown} (${describeError(error)}); reconnecting with backoff`);
    outage = true;
  };
  redis.on('error', onError);
  redis.on('ready', () => {
    if (outage) log?.info(`reconnected to Redis at ${address.shown}`);
    outage = false;
  });
  return onError;
}

/** REDIS_UNAVAILABLE for `address`, keeping the cause. */
export function unavailable(address: QueueAddress, cause: unknown): ClusterError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new ClusterError('REDIS_UNAVAILABLE', `cannot reach Redis at ${address.shown}: ${why}`, { cause });
}

/**
 * Checks that Redis will not evict the queue's keys. BullMQ works correctly
 * only with `maxmemory-policy noeviction`: any other policy lets Redis drop
 * jobs and results once `maxmemory` is reached. With a limit set, another
 * policy is refused (REDIS_EVICTS); with no limit nothing is evicted yet, so
 * it is only logged as a warning.
 */
export async function checkEviction(client: Redis, address: QueueAddress, logger: Logger | undefined): Promise<void> {
  // INFO answers even where CONFIG is disabled (managed Redis services).
  const info = await client.info('memory');
  const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  const policy = field('maxmemory_policy');
  const limit = Number(field('maxmemory') ?? '0');
  if (policy === undefined || policy === 'noeviction') return;
  const advice = `imgdl's queue needs noeviction: keys evicted under memory pressure lose jobs and results (redis-cli -u ${address.shown} config set maxmemory-policy noeviction)`;
  if (limit > 0)
    throw new ClusterError('REDIS_EVICTS', `Redis at ${address.shown} has maxmemory ${limit} with maxmemory-policy ${policy}; ${advice}`);
  logger?.warn(`Redis at ${address.shown} has maxmemory-policy ${policy} (no maxmemory yet, so nothing is evicted now); ${advice}`);
}

/** Connects a producer and checks eviction: the start of every cluster command. */
export async function preflight(address: QueueAddress, logger: Logger | undefined): Promise<Redis> {
  const client = await connectProducer(address);
  try {
    await checkEviction(client, address, logger);
  } catch (error) {
    client.disconnect();
    throw error instanceof ClusterError ? error : unavailable(address, error);
  }
  return client;
}
