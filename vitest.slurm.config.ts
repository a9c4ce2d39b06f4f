import { defineConfig } from 'vitest/config';

/**
 * Tests that start a one-node Slurm cluster (scripts/slurm/local-cluster: root, slurm-wlm and munge) and run
 * suites on real QEMU guests through it: npm run test:slurm. Kept out of npm test: they need root and take minutes.
 */
export default defineConfig({
  test: {
    include: ['harness/**/*.slurm.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 120_000,
  },
});
