/**
 * The earliest, latest and mean event time of the rows a reader wrote out (a progress record's
 * eventTime), in seconds since PostgreSQL's epoch, 2000-01-01 UTC. Sums are kept from the first
 * time seen, so that a batch of a hundred million rows still averages to the millisecond.
 */
export class EventTimes {
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  count = 0;
  private base = 0;
  private offsetSum = 0;

  add(seconds: number): void {
    if (this.count++ === 0) this.base = seconds;
    if (seconds < this.min) this.min = seconds;
    if (seconds > this.max) this.max = seconds;
    this.offsetSum += seconds - this.base;
  }

  merge(other: EventTimes): void {
    if (other.count === 0) return;
    if (this.count === 0) this.base = other.base;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.offsetSum += other.offsetSum + (other.base - this.base) * other.count;
    this.count += other.count;
  }

  get mean(): number {
    return this.base + this.offsetSum / this.count;
  }
}

const EPOCH_2000_MS = Date.UTC(2000, 0, 1);

/** Seconds since 2000-01-01 UTC as ISO-8601, to the millisecond. */
export function isoFromSeconds2000(seconds: number): string {
  return new Date(EPOCH_2000_MS + Math.round(seconds * 1000)).toISOString();
}
