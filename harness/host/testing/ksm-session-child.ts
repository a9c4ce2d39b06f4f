/**
 * Test fixture (ksm-session.e2e.test.ts): acquire a KSM session with the settings given as JSON in argv[2],
 * print "READY <saved values as JSON>", then wait until a signal ends the process. What happens then is the
 * process-wide cleanup's doing (harness/util/cleanup.ts), as in `xme run`.
 */
import { KsmSession, type KsmSettings } from '../ksm.ts';

const settings = JSON.parse(process.argv[2] ?? '') as KsmSettings;
const session = KsmSession.acquire(settings, { onNotice: (message) => process.stderr.write(`notice: ${message}\n`) });
process.stdout.write(`READY ${JSON.stringify(session.saved)}\n`);
setInterval(() => {}, 60_000); // keep running until signalled
