import { generateMersenne53Randomizer } from '@faker-js/faker';
import { pick } from './events.ts';
import type { Layout, LayoutColumns, LayoutName } from './layouts.ts';

/** Rows a loader must reject, each for one reason. */
export const BAD_ROW_KINDS = [
  'bad-timestamp', // month 13
  'negative-price',
  'unknown-event-type', // a name outside the layout's vocabulary
  'non-numeric-quantity', // only in layouts with a quantity column
  'wrong-field-count', // the last field is missing
  'invalid-utf8', // a Latin-1 "é" (byte 0xE9) in the user id, as in a file saved in the wrong encoding
  'nul-byte', // in the product id
  'price-overflow', // more than numeric(12,2) holds
  'nan-price',
] as const;
export type BadRowKind = (typeof BAD_ROW_KINDS)[number];

export interface InjectedRow {
  /** The physical line, 1-based: line 1 is the header (no field is quoted, so a row is one line). */
  line: number;
  kind: BadRowKind;
}

/**
 * What was injected into one file, written to input/<file>.injected.json before the file itself
 * is renamed in: a loader of `*.csv` ignores it, a test compares it with what the loader rejected.
 */
export interface InjectionManifest {
  file: string;
  layout: LayoutName;
  seed: number;
  /** Data rows in the file, good and bad. */
  rows: number;
  injected: InjectedRow[];
}

export const MANIFEST_SUFFIX = '.injected.json';

const BAD_ROW_SALT = 0x85eb_ca6b;
const LATIN1_E_ACUTE = Buffer.from([0xe9]);

/**
 * Says, row by row, whether to spoil the row and how (undefined: a good row). It draws from a
 * randomizer of its own, so that every other row is the bytes a run without bad rows writes.
 */
export function createBadRowPicker(rate: number, seed: number, layout: Layout): () => BadRowKind | undefined {
  const randomizer = generateMersenne53Randomizer((seed ^ BAD_ROW_SALT) >>> 0);
  const kinds = BAD_ROW_KINDS.filter((kind) => kind !== 'non-numeric-quantity' || layout.columns.quantity !== undefined);
  return () => (randomizer.next() < rate ? pick(kinds, randomizer.next()) : undefined);
}

/** A line of `layout` (with its "\n") spoiled as `kind` says; invalid UTF-8 can only be bytes. */
export function spoilLine(line: string, layout: Layout, kind: BadRowKind): string | Buffer {
  const delimiter = layout.delimiter;
  const fields = line.slice(0, -1).split(delimiter);
  const at = (column: keyof LayoutColumns) => layout.header.indexOf(layout.columns[column] ?? '');
  switch (kind) {
    case 'bad-timestamp': {
      const time = fields[at('eventTime')]!;
      fields[at('eventTime')] = `${time.slice(0, 5)}13${time.slice(7)}`;
      break;
    }
    case 'negative-price':
      fields[at('price')] = `-${fields[at('price')]}`;
      break;
    case 'unknown-event-type':
      fields[at('eventType')] = layout.unknownEventType;
      break;
    case 'non-numeric-quantity':
      fields[at('quantity')] = 'two';
      break;
    case 'wrong-field-count':
      fields.pop();
      break;
    case 'invalid-utf8': {
      const head = fields.slice(0, at('userId') + 1).join(delimiter);
      return Buffer.concat([Buffer.from(head), LATIN1_E_ACUTE, Buffer.from(line.slice(head.length))]);
    }
    case 'nul-byte':
      fields[at('productId')] += '\0';
      break;
    case 'price-overflow':
      fields[at('price')] = '12345678901.00';
      break;
    case 'nan-price':
      fields[at('price')] = 'NaN';
      break;
  }
  return `${fields.join(delimiter)}\n`;
}
