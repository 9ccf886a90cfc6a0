import { createHash } from 'node:crypto';
import type { ColumnMap } from './columns.ts';
import { canonicalInstant, parseTimestamp, type Timestamp } from './parseTimestamp.ts';

export const DEFAULT_EVENT_TYPES: ReadonlySet<string> = new Set(['view', 'purchase']);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PRICE = /^(\d+)(?:\.(\d+))?$/;
/** numeric(12,2): ten digits before the point. */
const MAX_PRICE_DIGITS = 10;
const MAX_PRICE_CENTS = 999_999_999_999;
const MAX_QUANTITY = 2_147_483_647;

/** Why a row was not loaded. A class, so that only rejected rows allocate one. */
export class RowRejection {
  constructor(readonly reason: string) {}
}

/** A valid event, its values normalised: what the COPY encoders write. */
export interface EventRow {
  eventId: string;
  userId: string;
  eventType: string;
  productId: string;
  /** As written (PostgreSQL rounds it in COPY text)… */
  price: string;
  /** …and rounded to cents as numeric(12,2) stores it (COPY binary). */
  priceCents: number;
  quantity: number;
  eventTime: Timestamp;
}

/**
 * A price of `whole` units and the digits d1 d2 d3 after the point, in cents, rounded half up on
 * the third digit as PostgreSQL rounds numeric(12,2); -1 if that no longer fits.
 */
export function roundedCents(whole: number, d1: number, d2: number, d3: number): number {
  const cents = whole * 100 + d1 * 10 + d2 + (d3 >= 5 ? 1 : 0);
  return cents > MAX_PRICE_CENTS ? -1 : cents;
}

const digitAt = (s: string | undefined, i: number) => (s && i < s.length ? s.charCodeAt(i) - 48 : 0);

export interface RowRules {
  map: ColumnMap;
  eventTypes: ReadonlySet<string>;
  /** Offset given to timestamps without a zone; undefined leaves them to the session's TimeZone. */
  defaultOffset: string | undefined;
}

function field(fields: string[], index: number): string {
  return index < 0 ? '' : fields[index]!.trim();
}

/**
 * Validates one record and returns its values, or the reason it was rejected. Values are trimmed;
 * event_type and event_id are lower-cased. Everything PostgreSQL would abort a COPY for is caught here.
 */
export function validateRow(fields: string[], rules: RowRules): EventRow | RowRejection {
  const { index, width } = rules.map;
  if (fields.length !== width) return new RowRejection(`expected ${width} fields as in the header, got ${fields.length}`);

  const userId = field(fields, index.user_id);
  if (!userId) return new RowRejection('user_id is empty');
  const productId = field(fields, index.product_id);
  if (!productId) return new RowRejection('product_id is empty');

  const eventType = field(fields, index.event_type).toLowerCase();
  if (!eventType) return new RowRejection('event_type is empty');
  if (!rules.eventTypes.has(eventType)) {
    return new RowRejection(`event_type '${eventType}' is not one of ${[...rules.eventTypes].join(', ')}`);
  }

  const price = field(fields, index.price);
  if (!price) return new RowRejection('price is empty');
  const p = PRICE.exec(price);
  if (!p) return new RowRejection(price.startsWith('-') ? `price '${price}' is negative` : `price '${price}' is not a decimal number`);
  const whole = p[1]!.replace(/^0+(?=\d)/, '');
  const priceCents = whole.length > MAX_PRICE_DIGITS ? -1 : roundedCents(Number(whole), digitAt(p[2], 0), digitAt(p[2], 1), digitAt(p[2], 2));
  if (priceCents < 0) return new RowRejection(`price '${price}' is too large (at most 9999999999.99)`);

  const quantity = field(fields, index.quantity);
  if (!quantity) return new RowRejection('quantity is empty');
  if (!/^[+-]?\d+$/.test(quantity)) return new RowRejection(`quantity '${quantity}' is not a whole number`);
  const q = Number(quantity);
  if (q < 1) return new RowRejection(`quantity '${quantity}' must be at least 1`);
  if (q > MAX_QUANTITY) return new RowRejection(`quantity '${quantity}' is too large (at most ${MAX_QUANTITY})`);

  const time = field(fields, index.event_time);
  if (!time) return new RowRejection('event_time is empty');
  const eventTime = parseTimestamp(time, rules.defaultOffset);
  if (eventTime === undefined) return new RowRejection(`event_time '${time}' is not a valid ISO-8601 timestamp`);

  let eventId: string;
  if (index.event_id < 0) {
    eventId = derivedEventId(userId, eventType, productId, canonicalPrice(price), q, canonicalInstant(eventTime));
  } else {
    eventId = field(fields, index.event_id).toLowerCase();
    if (!eventId) return new RowRejection('event_id is empty');
    if (!UUID.test(eventId)) return new RowRejection(`event_id '${eventId}' is not a UUID`);
  }
  return { eventId, userId, eventType, productId, price, priceCents, quantity: q, eventTime };
}

/** 007.50 and 7.5 are the same price. */
function canonicalPrice(price: string): string {
  const [whole, fraction = ''] = price.split('.');
  const f = fraction.replace(/0+$/, '');
  return `${whole!.replace(/^0+(?=\d)/, '')}${f && `.${f}`}`;
}

/** A stable id for a row from a file without event ids, so that loading it again finds the same ids. */
function derivedEventId(...values: Array<string | number>): string {
  const h = createHash('sha256').update(values.join('\u001f')).digest('hex');
  // Shaped as a version-8 (custom) UUID.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
