/**
 * Fault injection for the crash tests: with DROPSTREAM_CRASH_AT=<point> (or <point>@<batch>) the
 * process kills itself with SIGKILL when it reaches that point, as a power cut would. Points:
 * after-offsets (batch planned, nothing loaded), mid-copy (a COPY has received part of a file),
 * before-file-commit (rows copied, not committed), after-db-commit (every file committed, the
 * checkpoint commit not yet written), mid-checkpoint-write (commit record in its temp file, not renamed),
 * before-quarantine-move (a file's 'quarantined' ledger row committed, the file not yet moved),
 * before-replay-commit (replay-rejects: a file's replayed rows stored and moved, not committed; @ its batch).
 */
const target = process.env.DROPSTREAM_CRASH_AT;

export function crashPoint(point: string, batchId: number): void {
  if (target && (target === point || target === `${point}@${batchId}`)) process.kill(process.pid, 'SIGKILL');
}
