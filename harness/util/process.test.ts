import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { processAlive, processExists } from './process.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('processAlive', () => {
  it('is true for a running process, false for a zombie that still exists, false once reaped', async () => {
    // The shell starts a short sleep, prints its PID and becomes `sleep 3`, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 3'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const zombie = Number(line.toString().trim());
      expect(processAlive(parent.pid!)).toBe(true);
      let waited = 0;
      while (processAlive(zombie) && waited < 5_000) {
        await sleep(10);
        waited += 10;
      }
      expect(processExists(zombie)).toBe(true); // its parent has not reaped it
      expect(processAlive(zombie)).toBe(false);
    } finally {
      process.kill(parent.pid!, 'SIGKILL');
      await once(parent, 'exit');
    }
    expect(processAlive(parent.pid!)).toBe(false);
    expect(processAlive(-1)).toBe(false);
  });
});
