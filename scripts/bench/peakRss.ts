// Preloaded into the measured streamer (node --import): at exit it writes its peak RSS in bytes
// (getrusage's ru_maxrss, the kernel's own high-water mark) where BENCH_RSS_FILE says. Polling
// /proc from outside would miss a peak reached between two polls.
import { writeFileSync } from 'node:fs';

const target = process.env.BENCH_RSS_FILE;
if (target) process.on('exit', () => writeFileSync(target, String(process.resourceUsage().maxRSS * 1024)));
