import { constants } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../lib/log.ts';
import { reportUnwritableDirs } from '../../lib/writableDirs.ts';
import { ConfigError, parseCli, USAGE, type CliRequest } from './config.ts';
import { runGenerator } from './runGenerator.ts';

let request: CliRequest;
try {
  request = parseCli(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`generator: ${err.message} (see --help)\n`);
  process.exit(2);
}
if (request.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const log = createLogger('generator');
const { dataDir } = request.config;
if (await reportUnwritableDirs(log, [dataDir, join(dataDir, 'temp'), join(dataDir, 'input')])) process.exit(1);
const controller = new AbortController();

function stop(signal: NodeJS.Signals): void {
  if (controller.signal.aborted) {
    // An impatient second signal: a file cut short here is in temp, never in input.
    log.warn({ signal }, 'second signal, exiting at once');
    process.exit(128 + constants.signals[signal]);
  }
  log.info({ signal }, 'stopping; the file being written is discarded');
  controller.abort();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

try {
  await runGenerator(request.config, { log, signal: controller.signal });
} catch (err) {
  log.fatal({ err }, 'generator failed');
  process.exitCode = 1;
}
