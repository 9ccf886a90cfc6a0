/** The fields of an event, in the order they are copied into user_activity. */
export const COLUMNS = ['event_id', 'user_id', 'event_type', 'product_id', 'price', 'quantity', 'event_time'] as const;
export type Column = (typeof COLUMNS)[number];

/** Without one of these a row means nothing: a header that lacks one sets the file aside. */
export const REQUIRED: readonly Column[] = ['event_type', 'event_time', 'user_id'];

/**
 * Names other tools give the same columns (REES46, RetailRocket, Segment and Snowplow exports,
 * shop back-offices); matched after normalising (see normaliseName).
 */
export const DEFAULT_ALIASES: Record<Column, readonly string[]> = {
  event_id: ['id', 'eventid', 'event_uuid', 'uuid', 'message_id', 'messageid'],
  user_id: ['userid', 'user', 'customer_id', 'customer', 'visitorid', 'visitor_id', 'client_id'],
  event_type: ['eventtype', 'type', 'action', 'event', 'event_name', 'eventname'],
  product_id: ['productid', 'product', 'sku', 'item_id', 'itemid', 'item'],
  price: ['unit_price', 'unitprice'],
  quantity: ['qty', 'units'],
  event_time: ['eventtime', 'timestamp', 'event_timestamp', 'ts', 'time', 'created_at', 'datetime', 'date_time', 'occurred_at'],
};

/** `Event Type`, ` event-type `, `EVENT_TYPE` → `event_type`: how header names and event types are compared. */
export function normaliseName(name: string): string {
  return name.trim().toLowerCase().replace(/[\s_-]+/g, '_');
}
