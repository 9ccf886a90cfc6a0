-- The live page's revenue per minute reads the purchases loaded in the last minutes. Rows are
-- appended in the order they are loaded, so a BRIN index on ingested_at (a few pages, next to
-- nothing to maintain during COPY) lets that read skip all but the newest part of the table.
CREATE INDEX IF NOT EXISTS user_activity_ingested_at ON user_activity USING brin (ingested_at);
