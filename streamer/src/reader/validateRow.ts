import { createHash } from 'node:crypto';
import { DEFAULTED } from './contract/defaults.ts';
import type { ColumnMap } from './contract/layout.ts';
import { eventTypeOf, unknownEventType, type EventVocabulary } from './contract/vocabulary.ts';
import { canonicalInstant, readEventTime, type Timestamp } from './parseTimestamp.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PRICE = /^(\d+)(?:\.(\d+))?$/;
/** 19,99 in a file not delimited by commas (European spreadsheets). */
const DECIMAL_COMMA = /^\d+,\d+$/;
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
  /** The canonical type (`buy` is stored as purchase). */
  eventType: string;
  productId: string | null;
  /** As written, with a point (PostgreSQL rounds it in COPY text)… */
  price: string | null;
  /** …and rounded to cents as numeric(12,2) stores it (COPY binary); -1 without a price. */
  priceCents: number;
  quantity: number;
  eventTime: Timestamp;
  /** The file's event_id when it is not a UUID: the row's id is then derived from its content. */
  sourceEventId: string | null;
  /** The columns that map to no field, as a JSON object of text values; null without any. */
  attributes: string | null;
  /** The fields that took their default (bits of DEFAULTED). */
  defaulted: number;
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
  vocabulary: EventVocabulary;
  /** Offset given to timestamps without a zone; undefined leaves them to the session's TimeZone. */
  defaultOffset: string | undefined;
}

function field(fields: string[], index: number): string {
  return index < 0 ? '' : fields[index]!.trim();
}

/** The attributes of a row as JSON text: one key per column, empty values left out. */
function attributesOf(fields: string[], map: ColumnMap): string | null {
  let json = '';
  for (const a of map.attributes) {
    const value = fields[a.position]!.trim();
    if (value) json += `${json ? ',' : '{'}${a.json}:${JSON.stringify(value)}`;
  }
  return json ? `${json}}` : null;
}

/**
 * Validates one record and returns its values, or the reason it was rejected. Values are trimmed;
 * event_type is stored as its canonical name, a UUID event_id lower-cased. A field that is missing
 * or empty takes its default (see contract/defaults.ts); a value that is there must be readable,
 * whatever the event. Everything PostgreSQL would abort a COPY for is caught here.
 */
export function validateRow(fields: string[], rules: RowRules): EventRow | RowRejection {
  const { map } = rules;
  const { index, width } = map;
  if (fields.length !== width) return new RowRejection(`expected ${width} fields as in the header, got ${fields.length}`);
  let defaulted = 0;

  const userId = field(fields, index.user_id);
  if (!userId) return new RowRejection('user_id is empty');

  const writtenType = field(fields, index.event_type);
  if (!writtenType) return new RowRejection('event_type is empty');
  const eventType = eventTypeOf(rules.vocabulary, writtenType);
  if (eventType === undefined) return new RowRejection(unknownEventType(rules.vocabulary, writtenType));

  const productId = field(fields, index.product_id) || null;
  if (productId === null) defaulted |= DEFAULTED.product_id;

  let price: string | null = field(fields, index.price) || null;
  let priceCents = -1;
  if (price === null) {
    defaulted |= DEFAULTED.price;
  } else {
    if (map.delimiter !== ',' && DECIMAL_COMMA.test(price)) price = price.replace(',', '.');
    const p = PRICE.exec(price);
    if (!p) return new RowRejection(price.startsWith('-') ? `price '${price}' is negative` : `price '${price}' is not a decimal number`);
    const whole = p[1]!.replace(/^0+(?=\d)/, '');
    priceCents = whole.length > MAX_PRICE_DIGITS ? -1 : roundedCents(Number(whole), digitAt(p[2], 0), digitAt(p[2], 1), digitAt(p[2], 2));
    if (priceCents < 0) return new RowRejection(`price '${price}' is too large (at most 9999999999.99)`);
  }

  const quantity = field(fields, index.quantity);
  let q = 1;
  if (!quantity) {
    defaulted |= DEFAULTED.quantity;
  } else {
    if (!/^[+-]?\d+$/.test(quantity)) return new RowRejection(`quantity '${quantity}' is not a whole number`);
    q = Number(quantity);
    if (q < 0) return new RowRejection(`quantity '${quantity}' is negative`);
    if (q > MAX_QUANTITY) return new RowRejection(`quantity '${quantity}' is too large (at most ${MAX_QUANTITY})`);
    // Only a purchase must be of something: other events may say 0 (a view, a cart emptied).
    if (q < 1 && eventType === 'purchase') return new RowRejection(`quantity '${quantity}' must be at least 1 for a purchase`);
  }

  const time = field(fields, index.event_time);
  if (!time) return new RowRejection('event_time is empty');
  const eventTime = readEventTime(time, rules.defaultOffset);
  if (typeof eventTime === 'string') return new RowRejection(eventTime);

  const attributes = map.attributes.length > 0 ? attributesOf(fields, map) : null;
  const written = field(fields, index.event_id);
  const lower = written.toLowerCase();
  let eventId: string;
  let sourceEventId: string | null = null;
  if (UUID.test(lower)) {
    eventId = lower;
  } else {
    defaulted |= DEFAULTED.event_id;
    sourceEventId = written || null;
    eventId = derivedEventId(userId, eventType, productId, price === null ? null : canonicalPrice(price), q, canonicalInstant(eventTime), sourceEventId, attributes);
  }
  return { eventId, userId, eventType, productId, price, priceCents, quantity: q, eventTime, sourceEventId, attributes, defaulted };
}

/** 007.50 and 7.5 are the same price. */
function canonicalPrice(price: string): string {
  const [whole, fraction = ''] = price.split('.');
  const f = fraction.replace(/0+$/, '');
  return `${whole!.replace(/^0+(?=\d)/, '')}${f && `.${f}`}`;
}

/**
 * A stable id for a row without a UUID, from all of its content: loading it again finds the same
 * id, whatever the file or line. The id a file gave it (1, 2, … or evt-778) is part of that
 * content, but not all of it: two files that both number their rows from 1 hold other events.
 * The source id and attributes are added only when there are some, so that a row with neither
 * hashes as it did before they existed: ids derived then are found again.
 */
function derivedEventId(
  userId: string,
  eventType: string,
  productId: string | null,
  price: string | null,
  quantity: number,
  instant: string,
  sourceEventId: string | null,
  attributes: string | null,
): string {
  // NUL never occurs in a value (such lines are rejected): it stands for "none".
  const values: Array<string | number> = [userId, eventType, productId ?? '\0', price ?? '\0', quantity, instant];
  if (sourceEventId !== null) values.push('\u001esource_event_id', sourceEventId);
  if (attributes !== null) values.push('\u001eattributes', attributes);
  const h = createHash('sha256').update(values.join('\u001f')).digest('hex');
  // Shaped as a version-8 (custom) UUID.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
