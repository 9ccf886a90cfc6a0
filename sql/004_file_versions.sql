-- A file is its content; a name is only where it was found. A name that comes back with other
-- content (the daily export.csv, a file that grew, a complete copy after a torn one) is a new
-- version of that name and is loaded like any new file: the ledger keeps one row per version.
DROP INDEX IF EXISTS ingest_files_processed_name;

-- Two streamers on one data directory could record a file twice in one batch; one row each is the truth.
DELETE FROM ingest_files a USING ingest_files b
 WHERE a.batch_id = b.batch_id AND a.name = b.name AND a.status = b.status AND a.id > b.id;
-- A batch reads a name once: a replay of the batch can never record it twice.
CREATE UNIQUE INDEX IF NOT EXISTS ingest_files_batch_name ON ingest_files (batch_id, name);
-- The versions of a name, newest last.
CREATE INDEX IF NOT EXISTS ingest_files_name ON ingest_files (name, id);

ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS version integer;
COMMENT ON COLUMN ingest_files.version IS
  'n for the n-th processed (loaded, empty or duplicate) version of this name; null for a file set aside';
UPDATE ingest_files SET version = 1 WHERE status IN ('loaded', 'empty', 'duplicate') AND version IS NULL;
