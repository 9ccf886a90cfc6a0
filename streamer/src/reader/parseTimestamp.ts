const PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?$/i;

function daysInMonth(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Validates an ISO-8601 timestamp (`T` or space, optional seconds and fraction, `Z` or an offset)
 * and returns it in a form PostgreSQL reads unambiguously. A timestamp without a zone gets
 * `defaultOffset`; without one, it is left zone-less for the session's TimeZone. Returns undefined
 * for anything else, including dates that do not exist.
 */
export function parseTimestamp(text: string, defaultOffset: string | undefined): string | undefined {
  const m = PATTERN.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '00', fraction = '', zone] = m as unknown as string[];
  const year = +y!, month = +mo!, day = +d!;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (+h! > 23 || +mi! > 59 || +s > 59) return undefined;
  if (zone && zone.length > 1 && (+zone.slice(1, 3) > 15 || +zone.slice(-2) > 59)) return undefined;
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction}${zone ? zone.toUpperCase() : (defaultOffset ?? '')}`;
}

/**
 * The instant a validated timestamp (parseTimestamp's output) stands for, written one way only:
 * UTC, no trailing zeros in the fraction. A zone-less one stays local (its zone is PostgreSQL's
 * to apply). Used where two spellings of the same time must compare equal.
 */
export function canonicalInstant(timestamp: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(timestamp)!;
  const fraction = (m[7] ?? '').replace(/0+$/, '');
  const zone = m[8];
  if (!zone) return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${fraction && `.${fraction}`}`;
  const offsetMinutes = zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.length > 3 ? zone.slice(-2) : 0));
  const utc = new Date(0);
  utc.setUTCFullYear(+m[1]!, +m[2]! - 1, +m[3]!); // not Date.UTC: it reads years below 100 as 19xx
  utc.setUTCHours(+m[4]!, +m[5]! - offsetMinutes, +m[6]!);
  return `${utc.toISOString().slice(0, 19)}${fraction && `.${fraction}`}Z`;
}
