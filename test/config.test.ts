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

  it('rejects unknown flags and a DATABASE_URL that is not PostgreSQL', () => {
    expect(() => loadConfig(['--trigger', '1'], {})).toThrow(/Unknown option '--trigger'/);
    expect(() => loadConfig([], { DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL must start with postgres/);
    expect(() => loadConfig(['--file-concurrency', '0'], {})).toThrow(/--file-concurrency .* must be ≥ 1/);
  });
});
