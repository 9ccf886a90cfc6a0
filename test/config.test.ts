import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../streamer/src/config.ts';

describe('streamer configuration', () => {
  it('takes flags over environment over defaults', () => {
    const cfg = loadConfig(['--trigger-interval-ms', '0', '--max-bytes-per-batch', '64MB'], {
      DROPSTREAM_TRIGGER_INTERVAL_MS: '5000',
      DROPSTREAM_FILE_CONCURRENCY: '4',
      DROPSTREAM_DATA_DIR: '/srv/drop',
    });
    expect(cfg).toMatchObject({
      triggerIntervalMs: 0,
      maxBytesPerBatch: 64 * 1024 * 1024,
      fileConcurrency: 4,
      dataDir: '/srv/drop',
      inputDir: '/srv/drop/input',
      maxFilesPerBatch: 100,
      availableNow: false,
      databaseUrl: undefined,
    });
  });

  it('names every wrong value, its variable and what it got', () => {
    const attempt = () => loadConfig(['--trigger-interval-ms', 'soon', '--max-bytes-per-batch', 'lots'], { DROPSTREAM_POLL: 'maybe' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/--trigger-interval-ms \(DROPSTREAM_TRIGGER_INTERVAL_MS\) must be a whole number ≥ 0, got 'soon'/);
    expect(attempt).toThrow(/--max-bytes-per-batch .* must be a size such as 1048576, 64MB or 1GB, got 'lots'/);
    expect(attempt).toThrow(/--poll \(DROPSTREAM_POLL\) must be true or false, got 'maybe'/);
  });

  it('reads the row rules: event types, column aliases, extra columns, default time zone', () => {
    const cfg = loadConfig(['--event-types', ' View, purchase ,add_to_cart', '--column-aliases', 'event_time=when, at; user_id=shopper', '--default-time-zone', 'Europe/Paris'], {});
    expect(cfg.rules.vocabulary.types).toEqual(['view', 'purchase', 'add_to_cart']);
    expect(cfg.rules.attributes).toBe(true);
    expect(loadConfig(['--extra-columns', 'ignore'], {}).rules.attributes).toBe(false);
    expect(() => loadConfig(['--extra-columns', 'keep'], {})).toThrow(/--extra-columns \(DROPSTREAM_EXTRA_COLUMNS\) must be attributes or ignore, got 'keep'/);
    expect(cfg.rules.aliases.event_time).toEqual(expect.arrayContaining(['timestamp', 'when', 'at']));
    expect(cfg.rules.aliases.user_id).toContain('shopper');
    expect(cfg.rules).toMatchObject({ namedTimeZone: 'Europe/Paris', defaultOffset: undefined });
    expect(loadConfig(['--default-time-zone', '+02:00'], {}).rules).toMatchObject({ defaultOffset: '+02:00', namedTimeZone: undefined });
    expect(loadConfig([], {}).rules).toMatchObject({ defaultOffset: '+00:00', namedTimeZone: undefined });
    expect(() => loadConfig(['--column-aliases', 'when=event_time'], {})).toThrow(/--column-aliases .* names an unknown column 'when'/);
    expect(() => loadConfig(['--default-time-zone', 'Mars/Olympus'], {})).toThrow(/--default-time-zone .* must be UTC, an IANA time zone/);
    expect(() => loadConfig(['--clean-source', 'shred'], {})).toThrow(/--clean-source .* must be off, archive or delete, got 'shred'/);
  });

  it('reads the event vocabulary: built in, extended with +, replaced by a list, any value with *, more synonyms', () => {
    const vocabulary = (args: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(args, env).rules.vocabulary;
    const builtIn = vocabulary([]);
    expect(builtIn.types).toEqual(['view', 'purchase', 'add_to_cart', 'remove_from_cart', 'wishlist', 'search', 'checkout', 'refund', 'click']);
    expect([builtIn.names.get('buy'), builtIn.names.get('order_completed'), builtIn.names.get('cart'), builtIn.anyToken, builtIn.replacedBy]).toEqual(['purchase', 'purchase', 'add_to_cart', false, undefined]);
    const extended = vocabulary(['--event-types', '+Teleport, click']);
    expect(extended.types).toEqual([...builtIn.types, 'teleport']);
    expect(extended.replacedBy).toBeUndefined();
    const replaced = vocabulary([], { DROPSTREAM_EVENT_TYPES: 'purchase,view' });
    expect([replaced.types, replaced.replacedBy, replaced.names.get('buy'), replaced.names.get('cart')]).toEqual([['purchase', 'view'], ['purchase', 'view'], 'purchase', undefined]);
    expect(vocabulary(['--event-types', '*'])).toMatchObject({ anyToken: true, types: builtIn.types, replacedBy: undefined });
    const synonyms = vocabulary(['--event-synonyms', 'purchase=Bought, paid; add_to_cart=basket;view=order']);
    expect(['bought', 'paid', 'basket', 'order'].map((n) => synonyms.names.get(n))).toEqual(['purchase', 'purchase', 'add_to_cart', 'view']);
    expect(() => vocabulary(['--event-types', 'view,purchase', '--event-synonyms', 'add_to_cart=basket'])).toThrow(
      /--event-synonyms \(DROPSTREAM_EVENT_SYNONYMS\) maps names to 'add_to_cart', which is not an event type \(view, purchase; add it with --event-types\), got 'add_to_cart=basket'/,
    );
    expect(() => vocabulary(['--event-synonyms', 'view=purchase'])).toThrow(/maps 'purchase' to view, but 'purchase' is an event type itself/);
    expect(() => vocabulary(['--event-synonyms', 'purchase='])).toThrow(/gives no names for purchase/);
    expect(() => vocabulary(['--event-types', ','])).toThrow(/--event-types \(DROPSTREAM_EVENT_TYPES\) must list event types/);
  });

  it('rejects unknown flags and a DATABASE_URL that is not PostgreSQL', () => {
    expect(() => loadConfig(['--trigger', '1'], {})).toThrow(/Unknown option '--trigger'/);
    expect(() => loadConfig([], { DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL must start with postgres/);
    expect(() => loadConfig(['--file-concurrency', '0'], {})).toThrow(/--file-concurrency .* must be ≥ 1/);
  });

  it('takes a size only as a number with an optional unit', () => {
    expect(loadConfig(['--max-bytes-per-batch', '1.5GB'], {}).maxBytesPerBatch).toBe(1.5 * 1024 ** 3);
    expect(loadConfig(['--max-bytes-per-batch', '512 kb'], {}).maxBytesPerBatch).toBe(512 * 1024);
    expect(loadConfig(['--max-bytes-per-batch', '1048576'], {}).maxBytesPerBatch).toBe(1048576);
    // bytes.parse alone reads these as 1, 12 and 1.
    for (const nonsense of ['1.5.5GB', '12abc', '1,5GB', 'GB', '-1MB', '0x10']) {
      expect(() => loadConfig([`--max-bytes-per-batch=${nonsense}`], {}), nonsense).toThrow(
        `--max-bytes-per-batch (DROPSTREAM_MAX_BYTES_PER_BATCH) must be a size such as 1048576, 64MB or 1GB, got '${nonsense}'`,
      );
    }
  });

  it('keeps every -ms setting within what a timer can wait (setTimeout fires after 1 ms beyond it)', () => {
    const settings = [
      ['--trigger-interval-ms', 'DROPSTREAM_TRIGGER_INTERVAL_MS', 'triggerIntervalMs'],
      ['--file-stable-ms', 'DROPSTREAM_FILE_STABLE_MS', 'fileStableMs'],
      ['--copy-stall-timeout-ms', 'DROPSTREAM_COPY_STALL_TIMEOUT_MS', 'copyStallMs'],
      ['--rescan-interval-ms', 'DROPSTREAM_RESCAN_INTERVAL_MS', 'rescanIntervalMs'],
    ] as const;
    for (const [flag, env, key] of settings) {
      expect(loadConfig([flag, '2147483647'], {})[key]).toBe(2147483647);
      expect(() => loadConfig([flag, '2147483648'], {})).toThrow(`${flag} (${env}) must be ≤ 2147483647 (about 24.8 days, the longest timer Node.js keeps), got '2147483648'`);
      expect(() => loadConfig([], { [env]: '99999999999999999999' })).toThrow(`${flag} (${env}) must be ≤ 2147483647`);
    }
  });

  it('the HTTP server: on 127.0.0.1:8181 by default, 0 turns it off', () => {
    expect(loadConfig([], {})).toMatchObject({ httpPort: 8181, httpHost: '127.0.0.1' });
    expect(loadConfig(['--http-port', '0'], { DROPSTREAM_HTTP_HOST: '0.0.0.0' })).toMatchObject({ httpPort: 0, httpHost: '0.0.0.0' });
    expect(loadConfig([], { DROPSTREAM_HTTP_PORT: '9100' }).httpPort).toBe(9100);
    expect(() => loadConfig(['--http-port', '65536'], {})).toThrow(/--http-port \(DROPSTREAM_HTTP_PORT\) must be ≤ 65535, got '65536'/);
    expect(() => loadConfig(['--http-host', ' '], {})).toThrow(/--http-host \(DROPSTREAM_HTTP_HOST\) must not be empty/);
  });
});
