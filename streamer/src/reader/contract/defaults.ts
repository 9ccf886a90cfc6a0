import type { Column } from './columns.ts';

/**
 * What an optional field becomes when its column is missing or its value empty. Never a file set
 * aside: a row means something without these.
 */
export const DEFAULTS = {
  event_id: "derived from the row's content",
  product_id: 'null',
  price: 'null',
  quantity: '1',
} as const satisfies Partial<Record<Column, string>>;
export type OptionalColumn = keyof typeof DEFAULTS;
export const OPTIONAL = Object.keys(DEFAULTS) as OptionalColumn[];

/** Bits of EventRow.defaulted: which fields of a row took their default. */
export const DEFAULTED: Record<OptionalColumn, number> = { event_id: 1, product_id: 2, price: 4, quantity: 8 };
