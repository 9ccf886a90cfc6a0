// The zone: Z or an offset, maybe followed by a redundant Z (…+00:00Z), or the name UTC or GMT after a space.
const PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?)(Z)?|\s+(UTC|GMT))?$/i;
/** The same wall time followed by something else: what a rejected timestamp's reason describes. */
const NAMED_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*([A-Za-z][A-Za-z0-9_/+-]+)$/;
const EPOCH = /^(\d+)(?:\.(\d{1,9}))?$/;
/** Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
const UNIX_TO_2000 = 946_684_800;

/** A validated timestamp, in the two forms COPY can take it in. */
export interface Timestamp {
  /** ISO form PostgreSQL reads unambiguously (COPY text); zone-less when a named zone is to apply. */
  text: string;
  /** Seconds since 2000-01-01T00:00:00Z, PostgreSQL's epoch; NaN when the zone is PostgreSQL's to apply. */
  seconds: number;
  /** The fraction, rounded to microseconds as PostgreSQL rounds it (0 to 1,000,000). */
  micros: number;
}

export function daysInMonth(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days from 2000-01-01 in the proleptic Gregorian calendar, as PostgreSQL counts them (H. Hinnant's days_from_civil). */
function daysSince2000(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 730425;
}

/** Seconds since PostgreSQL's epoch of a wall-clock time at a UTC offset. */
export function secondsSince2000(year: number, month: number, day: number, hour: number, minute: number, second: number, offsetMinutes: number): number {
  return daysSince2000(year, month, day) * 86400 + hour * 3600 + (minute - offsetMinutes) * 60 + second;
}

/** `digits` after the point, rounded to microseconds exactly as PostgreSQL does: rint(strtod(".digits") * 1e6). */
export function fractionMicros(digits: string): number {
  if (digits.length === 0) return 0;
  const x = Number(`0.${digits}`) * 1e6;
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r; // rint: halves go to even
}

/** "Z", "+05:30", "-0800", "+02" → minutes east of UTC. */
function offsetMinutes(zone: string): number {
  if (zone.toUpperCase() === 'Z') return 0;
  const minutes = Number(zone.slice(1, 3)) * 60 + (zone.length > 3 ? Number(zone.slice(-2)) : 0);
  return zone[0] === '-' ? -minutes : minutes;
}

/**
 * Validates an ISO-8601 timestamp (`T` or space, optional seconds and fraction, `Z` or an offset).
 * A timestamp without a zone gets `defaultOffset`; without one, it is left zone-less for the
 * session's TimeZone. Returns undefined for anything else, including dates that do not exist.
 */
export function parseTimestamp(text: string, defaultOffset: string | undefined): Timestamp | undefined {
  const m = PATTERN.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '00', fraction = '', offset, redundantZ, name] = m as unknown as string[];
  const year = +y!, month = +mo!, day = +d!, hour = +h!, minute = +mi!, second = +s;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  if (offset && offset.length > 1 && (+offset.slice(1, 3) > 15 || +offset.slice(-2) > 59)) return undefined;
  // +00:00Z says UTC twice; +02:00Z says two different things.
  if (redundantZ && offsetMinutes(offset!) !== 0) return undefined;
  const zone = name ? 'Z' : offset ? offset.toUpperCase() : defaultOffset;
  return {
    text: `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction}${zone ?? ''}`,
    seconds: zone === undefined ? NaN : secondsSince2000(year, month, day, hour, minute, second, offsetMinutes(zone)),
    micros: fractionMicros(fraction.slice(1)),
  };
}

/**
 * The instant a validated timestamp stands for, written one way only: UTC, no trailing zeros in
 * the fraction. A zone-less one stays local (its zone is PostgreSQL's to apply). Used where two
 * spellings of the same time must compare equal.
 */
export function canonicalInstant(t: Timestamp): string {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?/.exec(t.text)!;
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  if (Number.isNaN(t.seconds)) return `${m[1]}${fraction && `.${fraction}`}`;
  const utc = new Date(Date.UTC(2000, 0, 1) + t.seconds * 1000);
  return `${utc.toISOString().slice(0, 19)}${fraction && `.${fraction}`}Z`;
}

/**
 * An event_time as other tools write it: ISO-8601 (see parseTimestamp), or Unix epoch seconds (9 to
 * 11 digits, maybe a fraction) or milliseconds (12 to 14 digits). Returns the reason it is
 * rejected instead, saying what was seen.
 */
export function readEventTime(text: string, defaultOffset: string | undefined): Timestamp | string {
  const t = parseTimestamp(text, defaultOffset);
  if (t) return t;
  const epoch = EPOCH.exec(text);
  if (epoch) {
    const [, whole, fraction = ''] = epoch as unknown as [string, string, string?];
    const digits = whole.replace(/^0+(?=\d)/, '').length;
    if (digits >= 9 && digits <= 11) return epochTimestamp(Number(whole), fraction);
    if (digits >= 12 && digits <= 14 && !fraction) return epochTimestamp(Math.floor(Number(whole) / 1000), whole.slice(-3));
    return `event_time '${text}' is a number, but not Unix epoch seconds (9 to 11 digits) or milliseconds (12 to 14 digits)`;
  }
  const named = NAMED_ZONE.exec(text);
  if (named && !/^(UTC|GMT)$/i.test(named[1]!)) return `event_time '${text}' ends in the zone name '${named[1]}': only UTC and GMT are read by name; write an offset such as +01:00`;
  const both = /([+-]\d{2}(?::?\d{2})?)Z$/i.exec(text);
  if (both && parseTimestamp(text.slice(0, -1), defaultOffset)) return `event_time '${text}' has two zones that disagree: ${both[1]} and Z`;
  return `event_time '${text}' is not a valid ISO-8601 timestamp`;
}

/** A Unix time, as a zoned Timestamp (its text in UTC, for COPY text and derived ids). */
function epochTimestamp(unixSeconds: number, fraction: string): Timestamp {
  const micros = fractionMicros(fraction);
  const iso = new Date(unixSeconds * 1000).toISOString().slice(0, 19);
  return { text: `${iso}${fraction && `.${fraction}`}Z`, seconds: unixSeconds - UNIX_TO_2000, micros };
}
