// A strict reader of the Prometheus text exposition format (version 0.0.4), for tests: every line
// must be a HELP, a TYPE or a sample of the family its TYPE line declared, or the read fails.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The series' name: the family's, or with _bucket, _sum or _count for a histogram. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL}=${LABEL_VALUE})(?:,${LABEL}=${LABEL_VALUE})*,?)?\\})? (\\S+)(?: (-?\\d+))?$`);
const PAIR = new RegExp(`(${LABEL})=(${LABEL_VALUE})`, 'g');
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<MetricType, string[]> = { counter: [''], gauge: [''], untyped: [''], histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

/** As Prometheus reads it (Go's strconv.ParseFloat): infinities and NaN in any case (prom-client writes 'Nan'). */
function number(text: string, line: string): number {
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
  if (special) return special[2]!.toLowerCase() === 'nan' ? Number.NaN : special[1] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a number '${text}' in: ${line}`);
  return Number(text);
}

const unescape = (quoted: string) => quoted.slice(1, -1).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));

export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a line break');
  const families = new Map<string, Family>();
  let current: Family | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const help = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    const type = new RegExp(`^# TYPE (${NAME}) (\\w+)$`).exec(line);
    if (help || type) {
      const name = (help ?? type)![1]!;
      if (current?.name !== name) {
        if (families.has(name)) throw new Error(`family ${name} appears twice`);
        current = { name, help: '', type: 'untyped', samples: [] };
        families.set(name, current);
      }
      if (help) current.help = help[2]!;
      else if (!TYPES.has(type![2]!)) throw new Error(`unknown type in: ${line}`);
      else current.type = type![2] as MetricType;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const [, name, labelText = '', valueText] = m;
    if (!current || !SUFFIXES[current.type].some((s) => `${current!.name}${s}` === name)) throw new Error(`sample outside its family (declared by TYPE): ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, quoted] of labelText.matchAll(PAIR)) {
      if (key! in labels) throw new Error(`label ${key} twice in: ${line}`);
      labels[key!] = unescape(quoted!);
    }
    current.samples.push({ name: name!, labels, value: number(valueText!, line) });
  }
  return families;
}
