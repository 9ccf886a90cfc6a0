-- Rollups: the revenue views read small tables kept in step with user_activity, not user_activity.
--
-- A statement-level trigger sees exactly the rows a statement stored (COPY, the staging merge's
-- INSERT … ON CONFLICT DO NOTHING, replay-rejects, an INSERT by hand) and appends their aggregates
-- to rollup_<grain>_delta, in the inserting transaction: a file that commits is counted, one that
-- rolls back is not, a duplicate that was skipped is not. The deltas are append-only and have no
-- index, so files loading at once never wait for each other there. rollups_compact() (after each
-- batch) folds the deltas into rollup_<grain>; the views read both, so they are exact at any moment.
--
-- Deletes and updates of user_activity are not followed: `npm run verify` reports the difference,
-- and SELECT rollups_rebuild(); (as the owner) counts everything again.

-- The one definition of the grains: every statement below is made from it.
-- A key column has merge null; a measure is an aggregate over user_activity rows, merged by sum, min or max.
CREATE FUNCTION rollup_definitions()
RETURNS TABLE (grain text, rows_where text, pos int, name text, type text, expr text, merge text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT * FROM (VALUES
    ('minute', $w$event_type = 'purchase'$w$, 1, 'minute', 'timestamptz', $e$date_trunc('minute', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'$e$, NULL),
    ('minute', $w$event_type = 'purchase'$w$, 2, 'purchases', 'bigint', 'count(*)', 'sum'),
    ('minute', $w$event_type = 'purchase'$w$, 3, 'units', 'bigint', 'sum(quantity)', 'sum'),
    ('minute', $w$event_type = 'purchase'$w$, 4, 'revenue', 'numeric', 'sum(price * quantity)', 'sum'),
    ('minute', $w$event_type = 'purchase'$w$, 5, 'purchases_unpriced', 'bigint', 'count(*) FILTER (WHERE price IS NULL)', 'sum'),
    -- revenue_by_day could sum the minutes, but reads 1,440 times fewer rows so.
    ('day', $w$event_type = 'purchase'$w$, 1, 'day', 'date', $e$(event_time AT TIME ZONE 'UTC')::date$e$, NULL),
    ('day', $w$event_type = 'purchase'$w$, 2, 'purchases', 'bigint', 'count(*)', 'sum'),
    ('day', $w$event_type = 'purchase'$w$, 3, 'units', 'bigint', 'sum(quantity)', 'sum'),
    ('day', $w$event_type = 'purchase'$w$, 4, 'revenue', 'numeric', 'sum(price * quantity)', 'sum'),
    ('day', $w$event_type = 'purchase'$w$, 5, 'purchases_unpriced', 'bigint', 'count(*) FILTER (WHERE price IS NULL)', 'sum'),
    -- Distinct buyers per day stay exact: a row per day and buyer.
    ('day_user', $w$event_type = 'purchase'$w$, 1, 'day', 'date', $e$(event_time AT TIME ZONE 'UTC')::date$e$, NULL),
    ('day_user', $w$event_type = 'purchase'$w$, 2, 'user_id', 'text', 'user_id', NULL),
    ('day_user', $w$event_type = 'purchase'$w$, 3, 'purchases', 'bigint', 'count(*)', 'sum'),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 1, 'product_id', 'text', 'product_id', NULL),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 2, 'views', 'bigint', $e$count(*) FILTER (WHERE event_type = 'view')$e$, 'sum'),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 3, 'purchases', 'bigint', $e$count(*) FILTER (WHERE event_type = 'purchase')$e$, 'sum'),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 4, 'units', 'bigint', $e$coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0)$e$, 'sum'),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 5, 'revenue', 'numeric', $e$sum(price * quantity) FILTER (WHERE event_type = 'purchase')$e$, 'sum'),
    ('product', $w$event_type IN ('view', 'purchase')$w$, 6, 'purchases_unpriced', 'bigint', $e$count(*) FILTER (WHERE event_type = 'purchase' AND price IS NULL)$e$, 'sum'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 1, 'user_id', 'text', 'user_id', NULL),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 2, 'views', 'bigint', $e$count(*) FILTER (WHERE event_type = 'view')$e$, 'sum'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 3, 'purchases', 'bigint', $e$count(*) FILTER (WHERE event_type = 'purchase')$e$, 'sum'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 4, 'revenue', 'numeric', $e$sum(price * quantity) FILTER (WHERE event_type = 'purchase')$e$, 'sum'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 5, 'purchases_unpriced', 'bigint', $e$count(*) FILTER (WHERE event_type = 'purchase' AND price IS NULL)$e$, 'sum'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 6, 'first_seen', 'timestamptz', 'min(event_time)', 'min'),
    ('user', $w$event_type IN ('view', 'purchase')$w$, 7, 'last_seen', 'timestamptz', 'max(event_time)', 'max')
  ) AS d (grain, rows_where, pos, name, type, expr, merge)
$$;

-- The statements of each grain, made from rollup_definitions(). aggregate_from reads %1$s, a
-- relation of user_activity rows: the trigger's transition table, or user_activity itself.
CREATE FUNCTION rollup_statements()
RETURNS TABLE (grain text, key_names text[], keys text, columns text, aggregate_from text, folded text, compact text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT grain,
         array_agg(name ORDER BY pos) FILTER (WHERE merge IS NULL),
         string_agg(quote_ident(name), ', ' ORDER BY pos) FILTER (WHERE merge IS NULL),
         string_agg(quote_ident(name), ', ' ORDER BY pos),
         format('SELECT %s FROM %%1$s WHERE %s GROUP BY %s',
                string_agg(format('%s AS %I', expr, name), ', ' ORDER BY pos), min(rows_where),
                string_agg(pos::text, ', ' ORDER BY pos) FILTER (WHERE merge IS NULL)),
         -- The grain now: compacted and pending deltas (rollup_<grain>_all), folded.
         format('SELECT %s FROM %I GROUP BY %s',
                string_agg(CASE WHEN merge IS NULL THEN quote_ident(name) ELSE format('%s(%I)::%s AS %I', merge, name, type, name) END, ', ' ORDER BY pos),
                'rollup_' || grain || '_all',
                string_agg(quote_ident(name), ', ' ORDER BY pos) FILTER (WHERE merge IS NULL)),
         -- Moves the deltas into the compacted table, in key order (two compactions never deadlock).
         format('WITH moved AS (DELETE FROM %2$I RETURNING *) INSERT INTO %1$I (%3$s) SELECT %4$s FROM moved GROUP BY %5$s ORDER BY %5$s ON CONFLICT (%5$s) DO UPDATE SET %6$s',
                'rollup_' || grain, 'rollup_' || grain || '_delta',
                string_agg(quote_ident(name), ', ' ORDER BY pos),
                string_agg(CASE WHEN merge IS NULL THEN quote_ident(name) ELSE format('%s(%I)::%s', merge, name, type) END, ', ' ORDER BY pos),
                string_agg(quote_ident(name), ', ' ORDER BY pos) FILTER (WHERE merge IS NULL),
                string_agg(format(CASE merge WHEN 'sum' THEN '%1$I = coalesce(%2$I.%1$I + EXCLUDED.%1$I, %2$I.%1$I, EXCLUDED.%1$I)'
                                             WHEN 'min' THEN '%1$I = least(%2$I.%1$I, EXCLUDED.%1$I)'
                                             ELSE '%1$I = greatest(%2$I.%1$I, EXCLUDED.%1$I)' END, name, 'rollup_' || grain), ', ' ORDER BY pos)
                  FILTER (WHERE merge IS NOT NULL))
    FROM rollup_definitions()
   GROUP BY grain
$$;

-- The tables, both of them together (rollup_<grain>_all) and folded (rollup_<grain>_now), made from the definitions.
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT d.grain,
           string_agg(format('%I %s', name, type), ', ' ORDER BY pos) AS columns,
           string_agg(quote_ident(name), ', ' ORDER BY pos) FILTER (WHERE merge IS NULL) AS keys
      FROM rollup_definitions() d GROUP BY d.grain
  LOOP
    -- NULLS NOT DISTINCT: a null product_id is one group, as in GROUP BY. fillfactor: updates stay HOT.
    EXECUTE format('CREATE TABLE %I (%s, UNIQUE NULLS NOT DISTINCT (%s)) WITH (fillfactor = 80)', 'rollup_' || g.grain, g.columns, g.keys);
    -- Every fold empties a delta by DELETE: until a vacuum marks that space free, appends extend the
    -- table and the views scan the dead pages too (a 27 MB user delta holding 6,000 live rows made
    -- revenue_by_user take 33 ms). So autovacuum takes a delta at its first 1,000 dead rows, unthrottled.
    EXECUTE format('CREATE TABLE %I (%s) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)',
                   'rollup_' || g.grain || '_delta', g.columns);
    EXECUTE format('CREATE VIEW %I AS SELECT * FROM %I UNION ALL SELECT * FROM %I', 'rollup_' || g.grain || '_all', 'rollup_' || g.grain, 'rollup_' || g.grain || '_delta');
    EXECUTE format('CREATE VIEW %I AS %s', 'rollup_' || g.grain || '_now', (SELECT folded FROM rollup_statements() s WHERE s.grain = g.grain));
  END LOOP;
END
$$;

-- As the owner: a role that may insert into user_activity needs no grant on the rollups.
CREATE FUNCTION rollups_count_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM rollup_statements() LOOP
    EXECUTE format('INSERT INTO %I (%s) %s', 'rollup_' || s.grain || '_delta', s.columns, format(s.aggregate_from, 'inserted'));
  END LOOP;
  RETURN NULL;
END
$$;

CREATE TRIGGER user_activity_rollups AFTER INSERT ON user_activity
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION rollups_count_inserted();

-- Runs as the owner: the streamer's role may add rows, not delete them. Anyone may call it: it
-- only moves what is counted, exactly. One compaction at a time; another that finds one running
-- returns at once (false), and the deltas wait for the next.
CREATE FUNCTION rollups_compact() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  s record;
BEGIN
  IF NOT pg_try_advisory_xact_lock(1919904876) THEN -- 'roll' in hex
    RETURN false;
  END IF;
  FOR s IN SELECT * FROM rollup_statements() ORDER BY grain LOOP
    EXECUTE s.compact;
  END LOOP;
  RETURN true;
END
$$;

-- Counts everything in user_activity again; rows are not added meanwhile (SHARE lock).
CREATE FUNCTION rollups_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  s record;
BEGIN
  LOCK TABLE user_activity IN SHARE MODE;
  FOR s IN SELECT * FROM rollup_statements() ORDER BY grain LOOP
    EXECUTE format('TRUNCATE %I, %I', 'rollup_' || s.grain, 'rollup_' || s.grain || '_delta');
    EXECUTE format('INSERT INTO %I (%s) %s ORDER BY %s', 'rollup_' || s.grain, s.columns, format(s.aggregate_from, 'user_activity'), s.keys);
  END LOOP;
END
$$;

-- What the rollups hold and what user_activity gives, per grain and key, where they differ.
-- Run it in one REPEATABLE READ transaction to compare both at one moment (npm run verify does).
CREATE FUNCTION rollup_differences()
RETURNS TABLE (grain text, key jsonb, rollups jsonb, recomputed jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM rollup_statements() ORDER BY grain LOOP
    RETURN QUERY EXECUTE format(
      $q$SELECT %1$L, coalesce(a.k, b.k), a.m, b.m
           FROM (SELECT jsonb_build_object(%2$s) AS k, to_jsonb(n) - %3$L::text[] AS m FROM (%4$s) n) a
           FULL JOIN (SELECT jsonb_build_object(%2$s) AS k, to_jsonb(n) - %3$L::text[] AS m FROM (%5$s) n) b ON a.k = b.k
          WHERE a.m IS DISTINCT FROM b.m
          ORDER BY 2$q$,
      s.grain,
      (SELECT string_agg(format('%L, n.%I', k, k), ', ') FROM unnest(s.key_names) k),
      s.key_names,
      format('SELECT * FROM %I', 'rollup_' || s.grain || '_now'),
      format(s.aggregate_from, 'user_activity'));
  END LOOP;
END
$$;

-- What was loaded before this migration, counted once.
SELECT rollups_rebuild();

-- The views of 010, same names, columns and rules, over the rollups.
-- Hours and days sum the rows of a finer or equal grain, compacted and pending alike, in one aggregation.
CREATE OR REPLACE VIEW revenue_by_hour AS
SELECT
  date_trunc('hour', minute AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
  sum(purchases)::bigint                                             AS purchases,
  sum(units)::bigint                                                 AS units,
  round(sum(revenue), 2)                                             AS revenue,
  sum(purchases_unpriced)::bigint                                    AS purchases_unpriced
FROM rollup_minute_all
GROUP BY 1;

-- Buyers: the compacted (day, buyer) rows are unique, so they are counted as they are; a pending
-- one counts once, unless its pair is compacted already.
CREATE OR REPLACE VIEW revenue_by_day AS
SELECT
  m.day,
  m.purchases,
  m.units,
  m.revenue,
  b.buyers,
  m.purchases_unpriced
FROM (
  SELECT
    day,
    sum(purchases)::bigint          AS purchases,
    sum(units)::bigint              AS units,
    round(sum(revenue), 2)          AS revenue,
    sum(purchases_unpriced)::bigint AS purchases_unpriced
  FROM rollup_day_all
  GROUP BY day
) m
JOIN (
  SELECT day, sum(n)::bigint AS buyers
  FROM (
    SELECT day, count(*) AS n FROM rollup_day_user GROUP BY day
    UNION ALL
    SELECT day, count(DISTINCT user_id) FROM rollup_day_user_delta d
     WHERE NOT EXISTS (SELECT FROM rollup_day_user c WHERE c.day = d.day AND c.user_id = d.user_id)
     GROUP BY day
  ) per_part
  GROUP BY day
) b USING (day);

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
FROM rollup_product_now;

CREATE OR REPLACE VIEW revenue_by_user AS
SELECT
  user_id,
  views,
  purchases,
  CASE WHEN purchases = purchases_unpriced AND purchases > 0 THEN NULL ELSE round(coalesce(revenue, 0), 2) END AS revenue,
  first_seen,
  last_seen,
  purchases_unpriced
FROM rollup_user_now;

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
    count(*) FILTER (WHERE views > 0)     AS viewers,
    count(*) FILTER (WHERE purchases > 0) AS buyers,
    coalesce(sum(views), 0)::bigint       AS views,
    coalesce(sum(purchases), 0)::bigint   AS purchases
  FROM rollup_user_now
) totals;

-- New: per UTC minute of event time, as revenue_by_hour.
CREATE VIEW revenue_by_minute AS
SELECT minute, purchases, units, round(revenue, 2) AS revenue, purchases_unpriced
FROM rollup_minute_now;
COMMENT ON VIEW revenue_by_minute IS
  'Purchases, units, revenue (priced purchases only) and purchases without a price per UTC minute of event time; minutes without purchases have no row.';
