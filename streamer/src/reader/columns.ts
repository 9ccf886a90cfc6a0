/** The columns of an event, in the order they are copied into user_activity. */
export const COLUMNS = ['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time'] as const;
export type Column = (typeof COLUMNS)[number];

/** Names other tools give the same columns; matched after normalising (see normaliseHeaderName). */
export const DEFAULT_ALIASES: Record<Column, readonly string[]> = {
  event_id: ['id', 'eventid', 'event_uuid', 'uuid'],
  user_id: ['userid', 'user', 'customer_id', 'customer'],
  event_type: ['eventtype', 'type', 'action', 'event'],
  product_id: ['productid', 'product', 'sku', 'item_id'],
  price: ['unit_price', 'unitprice'],
  quantity: ['qty', 'units'],
  event_time: ['eventtime', 'timestamp', 'event_timestamp', 'ts', 'time', 'created_at'],
};

/** Without an event_id column a file still loads: each row's id is derived from its content. */
const OPTIONAL: ReadonlySet<Column> = new Set(['event_id']);

export interface ColumnMap {
  /** Position of each column in a record; -1 when absent (event_id only). */
  index: Record<Column, number>;
  /** Number of fields every record must have: the header's. */
  width: number;
  /** Header names that map to no column: their values are ignored. */
  ignored: string[];
}

export function normaliseHeaderName(name: string): string {
  return name.trim().toLowerCase().replace(/[\s-]+/g, '_');
}

/** Maps a header record to column positions, or says why the file cannot be read. */
export function mapHeader(header: string[], aliases = DEFAULT_ALIASES): ColumnMap | { error: string } {
  const lookup = new Map<string, Column>();
  for (const column of COLUMNS) {
    lookup.set(column, column);
    for (const alias of aliases[column]) lookup.set(normaliseHeaderName(alias), column);
  }
  const index = Object.fromEntries(COLUMNS.map((c) => [c, -1])) as Record<Column, number>;
  const ignored: string[] = [];
  header.forEach((name, position) => {
    const column = lookup.get(normaliseHeaderName(name));
    if (column === undefined) ignored.push(name);
    else if (index[column] === -1) index[column] = position;
    else ignored.push(name);
  });
  const missing = COLUMNS.filter((c) => index[c] === -1 && !OPTIONAL.has(c));
  if (missing.length === COLUMNS.length - OPTIONAL.size) {
    return { error: `the first line is not a header naming the expected columns (${COLUMNS.join(', ')}): got '${header.join(',').slice(0, 200)}'` };
  }
  if (missing.length > 0) {
    return { error: `required column${missing.length > 1 ? 's' : ''} missing from the header: ${missing.join(', ')}` };
  }
  return { index, width: header.length, ignored };
}
