import type pg from 'pg';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Purchases loaded in one minute, and their revenue in cents (exact: price has two decimals). */
export interface MinuteRevenue {
  /** The minute's start. */
  minute: string;
  purchases: number;
  revenueCents: number;
}

/**
 * Purchases and revenue per minute in which they were loaded (ingested_at), over the last `minutes`
 * minutes up to the current one, by the database's clock; a minute without purchases is 0.
 * Minutes of loading, not of event time: they line up with the page's other charts of the last
 * minutes, and a BRIN index keeps this a read of the newest rows only (sql/030_*).
 */
export async function revenuePerMinute(db: Queryable, minutes: number): Promise<MinuteRevenue[]> {
  const { rows } = await db.query<{ minute: Date; purchases: string; revenue_cents: string }>(
    `WITH span AS (SELECT date_trunc('minute', now()) AS last, date_trunc('minute', now()) - make_interval(mins => $1 - 1) AS first),
          loaded AS (
            SELECT date_trunc('minute', a.ingested_at) AS minute, count(*) AS purchases, coalesce(sum(a.price * a.quantity * 100), 0)::bigint AS revenue_cents
              FROM user_activity a, span
             WHERE a.event_type = 'purchase' AND a.ingested_at >= span.first
             GROUP BY 1)
     SELECT m.minute, coalesce(l.purchases, 0) AS purchases, coalesce(l.revenue_cents, 0) AS revenue_cents
       FROM span, generate_series(span.first, span.last, interval '1 minute') AS m(minute)
       LEFT JOIN loaded l ON l.minute = m.minute
      ORDER BY m.minute`,
    [minutes],
  );
  return rows.map((r) => ({ minute: r.minute.toISOString(), purchases: Number(r.purchases), revenueCents: Number(r.revenue_cents) }));
}
