import { describe, expect, it } from 'vitest';
import { planBatch } from '../streamer/src/planner.ts';
import type { SourceFile } from '../streamer/src/reader/fileReader.ts';

const file = (name: string, size: number, mtimeMs: number): SourceFile => ({ name, path: `/in/${name}`, size, mtimeMs });

describe('planBatch', () => {
  const ready = [file('c.csv', 10, 3), file('a.csv', 10, 1), file('b2.csv', 10, 2), file('b1.csv', 10, 2)];

  it('takes files oldest first, then by name, up to the file cap', () => {
    expect(planBatch(7, ready, { maxFiles: 3, maxBytes: 1e9 }).files.map((f) => f.name)).toEqual(['a.csv', 'b1.csv', 'b2.csv']);
  });

  it('stops before the byte cap, but a file larger than the cap still goes, alone', () => {
    expect(planBatch(1, ready, { maxFiles: 10, maxBytes: 25 }).files.map((f) => f.name)).toEqual(['a.csv', 'b1.csv']);
    expect(planBatch(1, [file('big.csv', 100, 1), file('small.csv', 1, 2)], { maxFiles: 10, maxBytes: 50 }).files.map((f) => f.name)).toEqual(['big.csv']);
  });
});
