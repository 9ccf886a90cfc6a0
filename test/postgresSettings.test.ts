import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableMemory, describeHugePages, describeSettings, freeDisk, HUGE_PAGES_QUERY, hugePagesFrom, sizedSettings } from '../lib/postgresSettings.ts';
import { ownServer, type OwnServer } from './support/ownServer.ts';

const MB = 2 ** 20;
const GB = 2 ** 30;

describe('settings of the embedded PostgreSQL, sized from memory and disk', () => {
  it('takes a quarter of memory for shared buffers, within bounds that fit small and large machines', () => {
    expect(sizedSettings(2 * GB).settings).toMatchObject({ shared_buffers: '512MB', effective_cache_size: '1024MB', min_wal_size: '128MB' });
    expect(sizedSettings(24 * GB).settings).toMatchObject({ shared_buffers: '6144MB', maintenance_work_mem: '1024MB' });
    expect(sizedSettings(256 * GB).settings).toMatchObject({ shared_buffers: '8192MB', effective_cache_size: '65536MB' });
    // Below PostgreSQL's own defaults it never goes.
    expect(sizedSettings(256 * MB).settings).toMatchObject({ shared_buffers: '128MB', min_wal_size: '80MB' });
  });

  it('lets WAL grow to a quarter of the free disk between checkpoints, from 1 GB to 32 GB', () => {
    expect(sizedSettings(24 * GB, 2 * GB).settings.max_wal_size).toBe('1024MB');
    expect(sizedSettings(24 * GB, 80 * GB).settings.max_wal_size).toBe('20480MB');
    expect(sizedSettings(24 * GB, 1024 * GB).settings.max_wal_size).toBe('32768MB');
  });

  it('reads the free space of a directory that does not exist yet from its nearest parent', () => {
    const free = freeDisk(join(tmpdir(), 'no-such-dir', 'db'));
    const fs = statfsSync(tmpdir());
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(fs.blocks * fs.bsize);
  });

  it('never trades durability for speed', () => {
    const names = Object.keys(sizedSettings(24 * GB).settings);
    for (const unsafe of ['fsync', 'synchronous_commit', 'full_page_writes']) expect(names).not.toContain(unsafe);
  });

  it('reads a container limit smaller than the machine', () => {
    const memory = availableMemory();
    expect(memory).toBeGreaterThan(0);
    const limit = process.constrainedMemory?.() ?? 0;
    if (limit > 0) expect(memory).toBeLessThanOrEqual(limit);
  });

  it('says what it chose and from what', () => {
    expect(describeSettings(sizedSettings(2 * GB, 40 * GB))).toBe(
      'shared_buffers=512MB effective_cache_size=1024MB maintenance_work_mem=128MB max_wal_size=10240MB min_wal_size=128MB checkpoint_timeout=15min checkpoint_completion_target=0.9 wal_compression=on (sized from 2.0 GiB of memory, 40.0 GiB of free disk)',
    );
  });

  it('reads what a server says of huge pages, and tells how to reserve the ones it lacks', () => {
    expect(hugePagesFrom({ status: 'off', needed: '3102' })).toEqual({ status: 'off', needed: 3102 });
    expect(hugePagesFrom({ status: 'on', needed: '70' })).toEqual({ status: 'on', needed: 70 });
    // -1: the platform has no huge pages; null: a server older than 17 has neither setting.
    expect(hugePagesFrom({ status: 'off', needed: '-1' })).toEqual({ status: 'off', needed: null });
    expect(hugePagesFrom({ status: null, needed: null })).toEqual({ status: 'unknown', needed: null });
    expect(describeHugePages({ status: 'off', needed: 3102 })).toContain('`sysctl -w vm.nr_hugepages=3102`');
    expect(describeHugePages({ status: 'on', needed: 3102 })).toBe('huge pages: on');
    expect(describeHugePages({ status: 'off', needed: null })).not.toContain('sysctl');
    expect(describeHugePages({ status: 'unknown', needed: null })).not.toContain('sysctl');
  });

  describe('on a server started the way the pipeline starts one', () => {
    let server: OwnServer;
    beforeAll(async () => {
      server = await ownServer();
    }, 120_000);
    afterAll(() => server?.remove());

    it('runs with them, and with durability on', async () => {
      const { settings } = server;
      expect(settings).toEqual(sizedSettings(availableMemory(), Number.parseInt(settings.max_wal_size!, 10) * MB * 4).settings);
      const shown = async (name: string) => String((await server.query(`SELECT setting, unit FROM pg_settings WHERE name = $1`, [name])).rows[0]!.setting);
      const bytes = async (name: string) => Number((await server.query(`SELECT pg_size_bytes(current_setting($1)) AS b`, [name])).rows[0]!.b);
      expect(await bytes('shared_buffers')).toBe(Number.parseInt(settings.shared_buffers!, 10) * MB);
      expect(await bytes('max_wal_size')).toBe(Number.parseInt(settings.max_wal_size!, 10) * MB);
      expect(await shown('checkpoint_timeout')).toBe('900');
      expect(await shown('wal_compression')).not.toBe('off');
      for (const safe of ['fsync', 'full_page_writes', 'synchronous_commit']) expect(await shown(safe)).toBe('on');
    });

    it('says whether it got huge pages, and how many its shared memory takes', async () => {
      expect(server.hugePages).toEqual(hugePagesFrom((await server.query<{ status: string | null; needed: string | null }>(HUGE_PAGES_QUERY)).rows[0]!));
      const meminfo = readFileSync('/proc/meminfo', 'utf8');
      const kernel = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(meminfo)![1]);
      // The shared buffers alone fill this many of the kernel's huge pages; the server's count adds the rest.
      expect(server.hugePages!.needed).toBeGreaterThan((Number.parseInt(server.settings.shared_buffers!, 10) * 1024) / kernel('Hugepagesize'));
      // With none reserved the kernel has none to give (huge_pages = try falls back to normal pages).
      if (kernel('HugePages_Total') === 0) expect(server.hugePages!.status).toBe('off');
      else expect(['on', 'off']).toContain(server.hugePages!.status);
    });
  });
});
