import type { EventRow } from './validateRow.ts';

const SPECIAL = /[\\\t\n\r]/;

/** Escapes a value for PostgreSQL's COPY text format. */
export function escapeCopy(value: string): string {
  if (!SPECIAL.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

const orNull = (value: string | null) => (value === null ? '\\N' : escapeCopy(value));

/** The event's columns, source_event_id and attributes as COPY text, without the source and batch columns that follow them. */
export function eventText(row: EventRow): string {
  return (
    `${row.eventId}\t${escapeCopy(row.userId)}\t${escapeCopy(row.eventType)}\t${orNull(row.productId)}\t${row.price ?? '\\N'}\t${row.quantity}\t` +
    `${row.eventTime.text}\t${orNull(row.sourceEventId)}\t${orNull(row.attributes)}`
  );
}
