import { splitRecord } from '../recordAssembler.ts';
import { COLUMNS, DEFAULT_ALIASES, normaliseName, REQUIRED, type Column } from './columns.ts';
import { DEFAULTS, OPTIONAL, type OptionalColumn } from './defaults.ts';

/** The delimiters a header is tried with; European spreadsheet exports use `;`. */
export const DELIMITERS = [',', ';', '\t', '|'] as const;
export type Delimiter = (typeof DELIMITERS)[number];

/** A column that maps to no field, kept in each row's attributes. */
export interface Attribute {
  position: number;
  key: string;
  /** The key as JSON text, as it is written into attributes. */
  json: string;
}

/** What a file's header means: where each field is, and what else is kept. */
export interface ColumnMap {
  delimiter: Delimiter;
  /** Position of each field in a record; -1 when its column is missing (optional fields only). */
  index: Record<Column, number>;
  /** Number of fields every record must have: the header's. */
  width: number;
  /** Columns kept in attributes, sorted by key: the same JSON whatever the order of the columns. */
  attributes: Attribute[];
  /** Columns neither mapped nor kept (--extra-columns ignore), as written. */
  ignored: string[];
  /** How it was read, for the ledger (ingest_files.layout) and the logs. */
  report: LayoutReport;
}

/** How a header was read: stored as ingest_files.layout and ingest_layouts.layout. */
export interface LayoutReport {
  delimiter: Delimiter;
  /** Field → the header column it is read from, as written. */
  fields: Partial<Record<Column, string>>;
  /** Key in attributes → the header column, as written. */
  attributes: Record<string, string>;
  /** Columns left out, as written. */
  ignored: string[];
  /** Optional field whose column is missing → what every row gets instead. */
  defaults: Partial<Record<OptionalColumn, string>>;
}

export interface HeaderRules {
  aliases: Record<Column, readonly string[]>;
  /** Columns that map to no field are kept in attributes (else ignored). */
  attributes: boolean;
}

const DEFAULT_HEADER_RULES: HeaderRules = { aliases: DEFAULT_ALIASES, attributes: true };

/** Why a header cannot be used, and how many required columns it named (the best of several readings is reported). */
export interface HeaderError {
  error: string;
  found: number;
}

/** Maps a header record to field positions, or says why the file cannot be read. */
export function mapHeader(header: string[], rules: HeaderRules = DEFAULT_HEADER_RULES, delimiter: Delimiter = ','): ColumnMap | HeaderError {
  const lookup = new Map<string, Column>();
  for (const column of COLUMNS) {
    lookup.set(column, column);
    for (const alias of rules.aliases[column]) lookup.set(normaliseName(alias), column);
  }
  const index = Object.fromEntries(COLUMNS.map((c) => [c, -1])) as Record<Column, number>;
  const report: LayoutReport = { delimiter, fields: {}, attributes: {}, ignored: [], defaults: {} };
  const attributes: Attribute[] = [];
  const keys = new Set<string>();
  header.forEach((name, position) => {
    const column = lookup.get(normaliseName(name));
    if (column !== undefined && index[column] === -1) {
      index[column] = position;
      report.fields[column] = name;
    } else if (rules.attributes) {
      const base = normaliseName(name) || `column_${position + 1}`;
      let key = base;
      for (let n = 2; keys.has(key); n++) key = `${base}_${n}`;
      keys.add(key);
      attributes.push({ position, key, json: JSON.stringify(key) });
      report.attributes[key] = name;
    } else {
      report.ignored.push(name);
    }
  });
  const missing = REQUIRED.filter((c) => index[c] === -1);
  const found = REQUIRED.length - missing.length;
  if (found === 0) return { error: `the first line is not a header naming the required columns (${REQUIRED.join(', ')})`, found };
  if (missing.length > 0) return { error: `required column${missing.length > 1 ? 's' : ''} missing from the header: ${missing.join(', ')}`, found };
  for (const c of OPTIONAL) if (index[c] === -1) report.defaults[c] = DEFAULTS[c];
  attributes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { delimiter, index, width: header.length, attributes, ignored: report.ignored, report };
}

const occurrences = (text: string, c: string) => text.split(c).length - 1;
const shown = (d: Delimiter) => (d === '\t' ? 'tab' : d);

/**
 * Reads a header line: the delimiters it holds are tried, the most frequent first, and the first
 * that splits it into the required columns wins. Otherwise the reason shows the header as seen.
 */
export function readHeader(text: string, rules: HeaderRules): ColumnMap | { error: string } {
  const present = DELIMITERS.filter((d) => text.includes(d)).sort((a, b) => occurrences(text, b) - occurrences(text, a));
  let best: (HeaderError & { delimiter: Delimiter }) | undefined;
  let unreadable: string | undefined;
  for (const delimiter of present.length > 0 ? present : DELIMITERS.slice(0, 1)) {
    const fields = splitRecord(text, delimiter);
    if (typeof fields === 'string') {
      unreadable ??= fields;
      continue;
    }
    const mapped = mapHeader(fields, rules, delimiter);
    if (!('error' in mapped)) return mapped;
    if (!best || mapped.found > best.found) best = { ...mapped, delimiter };
  }
  const seen = JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
  if (!best) return { error: `${unreadable}: ${seen}` };
  if (best.found === 0) return { error: `${best.error}, split on any of , ; tab |: saw ${seen}` };
  return { error: `${best.error} (header ${seen}, split on '${shown(best.delimiter)}')` };
}

/** `event_time←timestamp, user_id, …`: each field and the column it is read from, when their names differ. */
function describeFields(report: LayoutReport): string {
  return COLUMNS.filter((c) => report.fields[c] !== undefined)
    .map((c) => (report.fields[c] === c ? c : `${c}←${report.fields[c]}`))
    .join(', ');
}

/** One line saying how a header was read, for the log and the status. */
export function describeLayout(report: LayoutReport): string {
  const parts = [`delimiter '${shown(report.delimiter)}'`, `fields ${describeFields(report)}`];
  // Sorted: jsonb keeps no key order, and the log and the status say the same.
  const attributes = Object.keys(report.attributes).sort();
  if (attributes.length > 0) parts.push(`attributes ${attributes.join(', ')}`);
  if (report.ignored.length > 0) parts.push(`ignored ${report.ignored.join(', ')}`);
  const defaults = describeDefaults(report);
  if (defaults) parts.push(`defaults ${defaults}`);
  return parts.join('; ');
}

/** `quantity 1, price null`: the defaults of the fields whose column is missing. */
function describeDefaults(report: LayoutReport): string {
  return OPTIONAL.filter((c) => report.defaults[c] !== undefined)
    .map((c) => `${c} ${report.defaults[c]}`)
    .join(', ');
}
