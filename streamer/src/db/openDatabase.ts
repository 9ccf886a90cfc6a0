import { existsSync } from 'node:fs';
import type { Logger } from '../../../lib/log.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../../lib/embeddedPostgres.ts';
import type { StreamerConfig } from '../config.ts';

/**
 * The database the configuration names: DATABASE_URL, else the embedded PostgreSQL under
 * <data-dir>/postgres (joined when it already runs, started otherwise; stop() stops only what was
 * started here). `mustExist`: do not create an embedded cluster (for commands that only read).
 */
export async function openDatabase(cfg: StreamerConfig, log?: Logger, mustExist = false): Promise<EmbeddedDatabase> {
  if (cfg.databaseUrl) return { url: cfg.databaseUrl, stop: async () => undefined };
  const dir = `${cfg.dataDir}/postgres`;
  if (mustExist && !existsSync(`${dir}/PG_VERSION`)) {
    throw new Error(`No embedded PostgreSQL in ${dir}: the streamer has not run with this data directory yet. Set DATABASE_URL to read another database.`);
  }
  return startEmbeddedPostgres({ dir, port: cfg.embeddedPgPort, database: 'dropstream' }, log);
}
