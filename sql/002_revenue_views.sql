-- Revenue views over user_activity, for ad-hoc questions in psql, e.g.
--   SELECT * FROM revenue_by_day ORDER BY day;
--   SELECT * FROM revenue_by_product ORDER BY revenue DESC LIMIT 10;
--
-- Revenue is sum(price * quantity) over purchases; views never add to it.
-- Only the event types 'view' and 'purchase' are counted: user_activity does not constrain
-- event_type, so any other value is ignored here rather than silently counted as either.
--
-- Time zones: hours and days are cut in UTC explicitly (event_time AT TIME ZONE 'UTC'), never in
-- the session's TimeZone, so the same data gives the same rows whoever runs the query. 'hour' is
-- turned back into a timestamptz (the UTC wall time AT TIME ZONE 'UTC'): it is an instant that
-- psql displays in the session's zone, e.g. 2026-03-02 01:00+00 shows as 2026-03-01 20:00-05.
--
-- Rates are rounded to 4 decimals; money is shown with 2 (round(..., 2) also gives 0.00 for none).
-- Views have no ORDER BY: order in the query that reads them.

CREATE OR REPLACE VIEW revenue_by_hour AS
SELECT
  date_trunc('hour', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
  count(*)                                                             AS purchases,
  sum(quantity)                                                        AS units,
  round(sum(price * quantity), 2)                                      AS revenue
FROM user_activity
WHERE event_type = 'purchase'
GROUP BY 1;
COMMENT ON VIEW revenue_by_hour IS
  'Purchases, units and revenue per UTC hour; hours without purchases have no row.';

CREATE OR REPLACE VIEW revenue_by_day AS
SELECT
  (event_time AT TIME ZONE 'UTC')::date AS day,
  count(*)                              AS purchases,
  sum(quantity)                         AS units,
  round(sum(price * quantity), 2)       AS revenue,
  count(DISTINCT user_id)               AS buyers
FROM user_activity
WHERE event_type = 'purchase'
GROUP BY 1;
COMMENT ON VIEW revenue_by_day IS
  'Purchases, units, revenue and distinct buyers per UTC day; days without purchases have no row.';

CREATE OR REPLACE VIEW revenue_by_product AS
SELECT
  product_id,
  views,
  purchases,
  units,
  revenue,
  -- Null, not 0 or infinity, for a product bought without any recorded view.
  round(purchases::numeric / nullif(views, 0), 4) AS conversion_rate
FROM (
  SELECT
    product_id,
    count(*) FILTER (WHERE event_type = 'view')                                  AS views,
    count(*) FILTER (WHERE event_type = 'purchase')                              AS purchases,
    coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0)            AS units,
    round(coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0), 2) AS revenue
  FROM user_activity
  WHERE event_type IN ('view', 'purchase')
  GROUP BY product_id
) per_product;
COMMENT ON VIEW revenue_by_product IS
  'Views, purchases, units, revenue and purchases/views (null without views) per product.';

CREATE OR REPLACE VIEW revenue_by_user AS
SELECT
  user_id,
  count(*) FILTER (WHERE event_type = 'view')                                        AS views,
  count(*) FILTER (WHERE event_type = 'purchase')                                    AS purchases,
  round(coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0), 2) AS revenue,
  min(event_time)                                                                    AS first_seen,
  max(event_time)                                                                    AS last_seen
FROM user_activity
WHERE event_type IN ('view', 'purchase')
GROUP BY user_id;
COMMENT ON VIEW revenue_by_user IS
  'Views, purchases, revenue and first/last event time per user.';

-- Always exactly one row (an aggregate without GROUP BY), zeros and null rates when empty.
CREATE OR REPLACE VIEW conversion_funnel AS
SELECT
  viewers,
  buyers,
  views,
  purchases,
  round(purchases::numeric / nullif(views, 0), 4) AS view_to_purchase_rate,
  -- Buyers who never viewed still count as buyers, so this can exceed 1.
  round(buyers::numeric / nullif(viewers, 0), 4)  AS buyer_rate
FROM (
  SELECT
    count(DISTINCT user_id) FILTER (WHERE event_type = 'view')     AS viewers,
    count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase') AS buyers,
    count(*) FILTER (WHERE event_type = 'view')                    AS views,
    count(*) FILTER (WHERE event_type = 'purchase')                AS purchases
  FROM user_activity
) totals;
COMMENT ON VIEW conversion_funnel IS
  'One row: distinct viewers and buyers, views, purchases and the two conversion rates.';

-- Assumes user_activity.(source_file, batch_id) hold the ingest_files (name, batch_id) of the file
-- the rows came from. Matching the batch too keeps a name that comes back (a quarantined file
-- dropped again, fixed) from being credited with the rows of its other attempt.
-- rows_in_table is what is there now; rows_loaded is what the streamer recorded at commit time.
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
  round(coalesce(a.revenue, 0), 2) AS revenue,
  a.first_event,
  a.last_event
FROM ingest_files f
LEFT JOIN (
  SELECT
    source_file,
    batch_id,
    count(*)                                                    AS rows_in_table,
    count(*) FILTER (WHERE event_type = 'purchase')             AS purchases,
    sum(price * quantity) FILTER (WHERE event_type = 'purchase') AS revenue,
    min(event_time)                                             AS first_event,
    max(event_time)                                             AS last_event
  FROM user_activity
  GROUP BY source_file, batch_id
) a ON a.source_file = f.name AND a.batch_id = f.batch_id;
COMMENT ON VIEW ingest_summary IS
  'One row per ingested file: its ingest_files record beside what user_activity holds from it.';
