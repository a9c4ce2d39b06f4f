/**
 * Test fixture (ksm-session.e2e.test.ts, ksm-guard tests): acquire a KSM session with the settings given as
 * JSON in argv[2], print "READY <saved values as JSON>", then wait until a signal ends the process — or, with
 * argv[3] "throw", die of an uncaught exception right after READY (only Node's 'exit' event runs then); with
 * argv[3] "no-guard", hold KSM without a guard process (as if the guard had died too). What happens at the
 * end is the process-wide cleanup's doing (harness/util/cleanup.ts), as in `xme run`.
 */
import { KsmSession, type KsmSettings } from '../ksm.ts';

const settings = JSON.parse(process.argv[2] ?? '') as KsmSettings;
const session = KsmSession.acquire(settings, { onNotice: (message) => process.stderr.write(`notice: ${message}\n`), guard: process.argv[3] !== 'no-guard' });
process.stdout.write(`READY ${JSON.stringify(session.saved)}\n`);
if (process.argv[3] === 'throw') {
  setTimeout(() => {
    throw new Error('fixture: an uncaught exception while holding KSM');
  }, 200);
} else {
  setInterval(() => {}, 60_000); // keep running until signalled
}
