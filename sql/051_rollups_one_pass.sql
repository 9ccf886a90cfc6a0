-- The trigger of 050 ran the five aggregations of rollup_statements() over each statement's rows:
-- five scans of the transition table, each hashing its rows again. This one reads it twice, the
-- purchases once and the views once, each with GROUP BY GROUPING SETS (one hash table per grain in
-- one pass), and the day is summed from the statement's minutes (a few rows), not from its rows.
-- It appends the same rows as 050's did: one per grain and key per statement, the values of
-- rollup_definitions(); test/rollups.test.ts holds it to those. The tables, the fold, the rebuild
-- and rollup_differences() are still made from rollup_definitions(): a change to a grain is a
-- change there and here.
CREATE OR REPLACE FUNCTION rollups_count_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  WITH bought AS MATERIALIZED (
    -- grouping_set: 7 by minute, 9 by (day, user_id), 13 by user_id, 14 by product_id.
    SELECT grouping(minute, day, user_id, product_id) AS grouping_set, minute, day, user_id, product_id,
           count(*) AS purchases, sum(quantity) AS units, sum(price * quantity) AS revenue,
           count(*) FILTER (WHERE price IS NULL) AS purchases_unpriced, min(event_time) AS first_seen, max(event_time) AS last_seen
      FROM (SELECT date_trunc('minute', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS minute,
                   (event_time AT TIME ZONE 'UTC')::date AS day, user_id, product_id, price, quantity, event_time
              FROM inserted WHERE event_type = 'purchase') purchase
     GROUP BY GROUPING SETS ((minute), (day, user_id), (user_id), (product_id))
  ), viewed AS MATERIALIZED (
    -- grouping_set: 1 by user_id, 2 by product_id.
    SELECT grouping(user_id, product_id) AS grouping_set, user_id, product_id,
           count(*) AS views, min(event_time) AS first_seen, max(event_time) AS last_seen
      FROM inserted WHERE event_type = 'view'
     GROUP BY GROUPING SETS ((user_id), (product_id))
  ), by_minute AS (
    INSERT INTO rollup_minute_delta (minute, purchases, units, revenue, purchases_unpriced)
    SELECT minute, purchases, units, revenue, purchases_unpriced FROM bought WHERE grouping_set = 7
  ), by_day AS (
    INSERT INTO rollup_day_delta (day, purchases, units, revenue, purchases_unpriced)
    SELECT (minute AT TIME ZONE 'UTC')::date, sum(purchases), sum(units), sum(revenue), sum(purchases_unpriced)
      FROM bought WHERE grouping_set = 7 GROUP BY 1
  ), by_day_user AS (
    INSERT INTO rollup_day_user_delta (day, user_id, purchases)
    SELECT day, user_id, purchases FROM bought WHERE grouping_set = 9
  ), by_product AS (
    INSERT INTO rollup_product_delta (product_id, views, purchases, units, revenue, purchases_unpriced)
    SELECT product_id, sum(views), sum(purchases), sum(units), sum(revenue), sum(purchases_unpriced)
      FROM (SELECT product_id, 0 AS views, purchases, units, revenue, purchases_unpriced FROM bought WHERE grouping_set = 14
            UNION ALL
            SELECT product_id, views, 0, 0, NULL, 0 FROM viewed WHERE grouping_set = 2) product
     GROUP BY product_id
  )
  INSERT INTO rollup_user_delta (user_id, views, purchases, revenue, purchases_unpriced, first_seen, last_seen)
  SELECT user_id, sum(views), sum(purchases), sum(revenue), sum(purchases_unpriced), min(first_seen), max(last_seen)
    FROM (SELECT user_id, 0 AS views, purchases, revenue, purchases_unpriced, first_seen, last_seen FROM bought WHERE grouping_set = 13
          UNION ALL
          SELECT user_id, views, 0, NULL, 0, first_seen, last_seen FROM viewed WHERE grouping_set = 1) person
   GROUP BY user_id;
  RETURN NULL;
END
$$;
