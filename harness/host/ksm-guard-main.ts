/**
 * Entry point of the KSM guard process, which ksm-guard.ts starts for a KSM session (node --import tsx
 * ksm-guard-main.ts <owner identity as JSON>; fd 0 the lifeline, fd 3 the readiness pipe). What it does:
 * ksm-guard-process.ts.
 */
import { runKsmGuard } from './ksm-guard-process.ts';

process.title = 'xme-ksm-guard';
process.exit(await runKsmGuard(process.argv.slice(2)));
