-- Before loading a file, the streamer looks for loaded files of the same size (only those can have
-- the same content): an index keeps that lookup flat however long the history grows.
CREATE INDEX IF NOT EXISTS ingest_files_loaded_size ON ingest_files (size) WHERE status = 'loaded';
