-- The data contract: files from other tools load what they hold, and lose no column.
--
-- Only event_type, event_time and user_id are required of a row. A missing or empty product_id or
-- price is stored as null (never as an empty string or 0), a missing quantity as 1.
ALTER TABLE user_activity ALTER COLUMN product_id DROP NOT NULL;
ALTER TABLE user_activity ALTER COLUMN price DROP NOT NULL;

-- The file's event_id when it is not a UUID (1, 2, … or evt-778); event_id is then derived from the
-- row's content, this id included. Null when the file's id was a UUID, or it had none.
ALTER TABLE user_activity ADD COLUMN IF NOT EXISTS source_event_id text;
-- The columns that map to no field, one key per column (its header name, normalised), the value
-- as text; empty values leave no key. Null when the row has none. e.g. attributes->>'category'.
ALTER TABLE user_activity ADD COLUMN IF NOT EXISTS attributes jsonb;

-- How headers were read: one row per distinct layout, in the order they were first met.
CREATE TABLE IF NOT EXISTS ingest_layouts (
  id             bigserial   PRIMARY KEY,
  layout         jsonb       NOT NULL,
  first_file     text        NOT NULL,
  first_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS ingest_layouts_layout ON ingest_layouts ((md5(layout::text)));
COMMENT ON COLUMN ingest_layouts.layout IS
  '{delimiter, fields: {field: header column}, attributes: {key: header column}, ignored: [columns], defaults: {field: value of a missing column}}';

ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS layout_id bigint REFERENCES ingest_layouts (id);
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS layout jsonb;
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS rows_defaulted jsonb;
COMMENT ON COLUMN ingest_files.layout IS
  'How the header of a loaded file was read (as ingest_layouts.layout); null for a file not read';
COMMENT ON COLUMN ingest_files.rows_defaulted IS
  'Per optional field (event_id, product_id, price, quantity), the valid rows that took its default: column missing, value empty, or (event_id) not a UUID';

-- The revenue views of 002, with the same names and columns, and purchases without a price counted
-- apart: revenue is the sum over priced purchases only, never counting a missing price as 0.
-- It is null where there are purchases but none has a price (unknown), 0.00 where there are none.
-- purchases and units still count every purchase.

CREATE OR REPLACE VIEW revenue_by_hour AS
SELECT
  date_trunc('hour', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
  count(*)                                                             AS purchases,
  sum(quantity)                                                        AS units,
  round(sum(price * quantity), 2)                                      AS revenue,
  count(*) FILTER (WHERE price IS NULL)                                AS purchases_unpriced
FROM user_activity
WHERE event_type = 'purchase'
GROUP BY 1;
COMMENT ON VIEW revenue_by_hour IS
  'Purchases, units, revenue (priced purchases only) and purchases without a price per UTC hour; hours without purchases have no row.';

CREATE OR REPLACE VIEW revenue_by_day AS
SELECT
  (event_time AT TIME ZONE 'UTC')::date AS day,
  count(*)                              AS purchases,
  sum(quantity)                         AS units,
  round(sum(price * quantity), 2)       AS revenue,
  count(DISTINCT user_id)               AS buyers,
  count(*) FILTER (WHERE price IS NULL) AS purchases_unpriced
FROM user_activity
WHERE event_type = 'purchase'
GROUP BY 1;
COMMENT ON VIEW revenue_by_day IS
  'Purchases, units, revenue (priced purchases only), distinct buyers and purchases without a price per UTC day; days without purchases have no row.';

CREATE OR REPLACE VIEW revenue_by_product AS
SELECT
  product_id,
  views,
  purchases,
  units,
  -- 0.00 without purchases; null when there are some, none of them priced.
  CASE WHEN purchases = purchases_unpriced AND purchases > 0 THEN NULL ELSE round(coalesce(revenue, 0), 2) END AS revenue,
  -- Null, not 0 or infinity, for a product bought without any recorded view.
  round(purchases::numeric / nullif(views, 0), 4) AS conversion_rate,
  purchases_unpriced
FROM (
  SELECT
    product_id,
    count(*) FILTER (WHERE event_type = 'view')                           AS views,
    count(*) FILTER (WHERE event_type = 'purchase')                       AS purchases,
    coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0)     AS units,
    sum(price * quantity) FILTER (WHERE event_type = 'purchase')          AS revenue,
    count(*) FILTER (WHERE event_type = 'purchase' AND price IS NULL)     AS purchases_unpriced
  FROM user_activity
  WHERE event_type IN ('view', 'purchase')
  GROUP BY product_id
) per_product;
COMMENT ON VIEW revenue_by_product IS
  'Views, purchases, units, revenue (priced purchases only), purchases/views (null without views) and purchases without a price per product (null: events without one).';

CREATE OR REPLACE VIEW revenue_by_user AS
SELECT
  user_id,
  views,
  purchases,
  CASE WHEN purchases = purchases_unpriced AND purchases > 0 THEN NULL ELSE round(coalesce(revenue, 0), 2) END AS revenue,
  first_seen,
  last_seen,
  purchases_unpriced
FROM (
  SELECT
    user_id,
    count(*) FILTER (WHERE event_type = 'view')                       AS views,
    count(*) FILTER (WHERE event_type = 'purchase')                   AS purchases,
    sum(price * quantity) FILTER (WHERE event_type = 'purchase')      AS revenue,
    min(event_time)                                                   AS first_seen,
    max(event_time)                                                   AS last_seen,
    count(*) FILTER (WHERE event_type = 'purchase' AND price IS NULL) AS purchases_unpriced
  FROM user_activity
  WHERE event_type IN ('view', 'purchase')
  GROUP BY user_id
) per_user;
COMMENT ON VIEW revenue_by_user IS
  'Views, purchases, revenue (priced purchases only), first/last event time and purchases without a price per user.';

CREATE OR REPLACE VIEW ingest_summary AS
SELECT
  f.name,
  f.status,
  f.reason,
  f.batch_id,
  f.committed_at,
  f.rows_read,
  f.rows_loaded,
  f.rows_rejected,
  f.rows_duplicate,
  coalesce(a.rows_in_table, 0)     AS rows_in_table,
  coalesce(a.purchases, 0)         AS purchases,
  CASE WHEN a.purchases = a.purchases_unpriced AND a.purchases > 0 THEN NULL ELSE round(coalesce(a.revenue, 0), 2) END AS revenue,
  a.first_event,
  a.last_event,
  coalesce(a.purchases_unpriced, 0) AS purchases_unpriced
FROM ingest_files f
LEFT JOIN (
  SELECT
    source_file,
    batch_id,
    count(*)                                                          AS rows_in_table,
    count(*) FILTER (WHERE event_type = 'purchase')                   AS purchases,
    sum(price * quantity) FILTER (WHERE event_type = 'purchase')      AS revenue,
    min(event_time)                                                   AS first_event,
    max(event_time)                                                   AS last_event,
    count(*) FILTER (WHERE event_type = 'purchase' AND price IS NULL) AS purchases_unpriced
  FROM user_activity
  GROUP BY source_file, batch_id
) a ON a.source_file = f.name AND a.batch_id = f.batch_id;
COMMENT ON VIEW ingest_summary IS
  'One row per ingested file: its ingest_files record beside what user_activity holds from it (revenue of priced purchases only).';
