import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['harness/**/*.test.ts', 'strategies/**/*.test.ts', 'scenarios/**/*.test.ts', 'guest-images/**/*.test.ts'],
    // *.xen.test.ts need a Xen dom0: npm run test:xen runs them inside the Xen test host. *.slurm.test.ts
    // start a Slurm cluster (root, slurm-wlm): npm run test:slurm.
    exclude: ['**/node_modules/**', '**/*.xen.test.ts', '**/*.slurm.test.ts'],
    // Each test file in its own process: end-to-end tests boot QEMU guests and install signal handlers.
    pool: 'forks',
    // 2 cores: two files at a time, so that booting guests under TCG does not starve each other.
    maxWorkers: 2,
    // A guard against hangs, not a speed target: a loaded CI host spawns `xme` processes slowly.
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
