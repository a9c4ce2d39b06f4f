import { defineConfig } from 'vitest/config';

/** Tests that need a Xen dom0: run by scripts/xen-testhost/run inside the Xen test host (npm run test:xen). */
export default defineConfig({
  test: {
    include: ['harness/**/*.xen.test.ts', 'strategies/**/*.xen.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
