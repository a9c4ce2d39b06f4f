import fs from 'node:fs';

/** Whether a process with this PID exists (EPERM: it exists but belongs to another user); a zombie exists. */
export function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process with this PID still runs: it exists and is not a zombie. A zombie runs nothing and
 * holds nothing but its PID, and an orphan stays one until PID 1 reaps it — which some inits (the CI
 * machine's) do only every second or so, under load later still. Where /proc cannot tell, as processExists.
 */
export function processAlive(pid: number): boolean {
  if (!processExists(pid)) return false;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return !(code === 'ENOENT' || code === 'ESRCH');
  }
  // The state is the first field after the command name, which is in parentheses and may hold ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}
