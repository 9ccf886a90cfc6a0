import type { FileResult } from './sink/ledger.ts';

/** The batch the loop is running, so that a stop can say what really became of it. */
export class InFlight {
  private running: { id: number; files: number; committed: Set<string> } | undefined;
  private committedAfterStop: number | undefined;

  constructor(private readonly stop: AbortSignal) {}

  begin(id: number, files: number): void {
    this.running = { id, files, committed: new Set() };
  }

  /** A file's outcome; every status but 'changed' has its ledger row committed. */
  settled(result: FileResult): FileResult {
    if (result.status !== 'changed') this.running?.committed.add(result.name);
    return result;
  }

  /** The batch is finished in the ledger. */
  committed(): void {
    if (this.running && this.stop.aborted) this.committedAfterStop = this.running.id;
    this.running = undefined;
  }

  /** What became of the work in flight when the stream stopped, in one sentence. */
  describe(): string {
    if (this.running) {
      const { id, files, committed } = this.running;
      return `batch ${id} was cut short (${committed.size} of ${files} files committed, the rest resumes at the next start)`;
    }
    if (this.committedAfterStop !== undefined) return `batch ${this.committedAfterStop} was committed`;
    return 'nothing was in flight';
  }
}
