-- Each batch's progress record, shaped like Spark's StreamingQueryProgress (fields in README,
-- "Progress"): written once the batch is committed, so that psql sees what /api/progress serves, e.g.
--   SELECT id, progress->'durationMs'->>'triggerExecution' AS ms, progress->>'numInputRows' AS rows
--     FROM ingest_batches ORDER BY id DESC LIMIT 10;
-- Null for batches run before this column existed, and for one whose streamer was killed between
-- its commit record and this write.
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS progress jsonb;

-- The stream's identity: one row, its id made by the first streamer that finds none (the "id" of
-- every progress record, the same across restarts; "runId" is new at every start).
CREATE TABLE IF NOT EXISTS ingest_stream (
  only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
  id          uuid        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
