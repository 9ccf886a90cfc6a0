-- Core tables. Other tools query these by name: keep the names and columns stable.

CREATE TABLE IF NOT EXISTS ingest_batches (
  id              bigint PRIMARY KEY,
  files           integer     NOT NULL DEFAULT 0,
  bytes           bigint      NOT NULL DEFAULT 0,
  rows_read       bigint      NOT NULL DEFAULT 0,
  rows_loaded     bigint      NOT NULL DEFAULT 0,
  rows_rejected   bigint      NOT NULL DEFAULT 0,
  rows_duplicate  bigint      NOT NULL DEFAULT 0,
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);

-- One row per file, written in the same transaction as the file's rows: the file-done marker
-- that makes a crash between the database commit and the checkpoint write harmless.
CREATE TABLE IF NOT EXISTS ingest_files (
  id              bigserial PRIMARY KEY,
  name            text        NOT NULL,      -- path relative to the input directory
  fingerprint     text,                      -- sha256 of the whole content, hex; null if unreadable
  size            bigint      NOT NULL,
  mtime           timestamptz NOT NULL,
  status          text        NOT NULL CHECK (status IN ('loaded', 'empty', 'duplicate', 'quarantined')),
  reason          text,                      -- why a file was not loaded
  rows_read       bigint      NOT NULL DEFAULT 0,
  rows_loaded     bigint      NOT NULL DEFAULT 0,
  rows_rejected   bigint      NOT NULL DEFAULT 0,
  rows_duplicate  bigint      NOT NULL DEFAULT 0,
  batch_id        bigint      NOT NULL,
  committed_at    timestamptz NOT NULL DEFAULT now()
);
-- A name is taken once it has been processed; a file set aside may come back, fixed, under the same name.
CREATE UNIQUE INDEX IF NOT EXISTS ingest_files_processed_name
  ON ingest_files (name) WHERE status IN ('loaded', 'empty', 'duplicate');
-- The same content is loaded at most once, whatever the file is called.
CREATE UNIQUE INDEX IF NOT EXISTS ingest_files_loaded_fingerprint
  ON ingest_files (fingerprint) WHERE status = 'loaded';
CREATE INDEX IF NOT EXISTS ingest_files_batch ON ingest_files (batch_id);

CREATE TABLE IF NOT EXISTS user_activity (
  event_id     uuid          PRIMARY KEY,
  user_id      text          NOT NULL,
  event_type   text          NOT NULL,
  product_id   text          NOT NULL,
  price        numeric(12,2) NOT NULL,
  quantity     integer       NOT NULL,
  event_time   timestamptz   NOT NULL,
  source_file  text          NOT NULL,
  source_line  bigint        NOT NULL,
  batch_id     bigint        NOT NULL,
  ingested_at  timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_activity_rejects (
  id           bigserial   PRIMARY KEY,
  source_file  text        NOT NULL,
  source_line  bigint      NOT NULL,
  raw          text        NOT NULL,
  reason       text        NOT NULL,
  batch_id     bigint      NOT NULL,
  rejected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS user_activity_rejects_file ON user_activity_rejects (source_file, source_line);
