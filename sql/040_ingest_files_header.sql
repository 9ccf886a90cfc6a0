-- The header of a loaded file, as written (without a BOM): with it, `npm run replay-rejects` reads the
-- file's rejected rows again from their raw text, as the file was read, without the file. Null for a
-- file not read, and for one loaded before it was recorded (its rejects cannot be replayed).
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS header text;
