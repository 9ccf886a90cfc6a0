const TEMP_SUFFIXES = ['.tmp', '.part', '.partial', '.crdownload', '.swp', '~'];

/**
 * Which names in the input directory are data: `*.csv` (any case), not hidden (editors, rsync and
 * many copy tools write `.name` first) and without a temporary suffix.
 */
export function acceptsName(name: string): boolean {
  const lower = name.toLowerCase();
  return !name.startsWith('.') && lower.endsWith('.csv') && !TEMP_SUFFIXES.some((s) => lower.endsWith(s));
}
