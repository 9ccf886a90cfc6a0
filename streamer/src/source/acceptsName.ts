import { sep } from 'node:path';

const TEMP_SUFFIXES = ['.tmp', '.part', '.partial', '.crdownload', '.swp', '~'];

/**
 * Which names in the input directory are data: `*.csv` (any case), not hidden (editors, rsync and
 * many copy tools write `.name` first; nor inside a hidden directory) and without a temporary suffix.
 */
export function acceptsName(name: string): boolean {
  const lower = name.toLowerCase();
  return !name.split(sep).some((part) => part.startsWith('.')) && lower.endsWith('.csv') && !TEMP_SUFFIXES.some((s) => lower.endsWith(s));
}
