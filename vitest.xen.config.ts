import { defineConfig } from 'vitest/config';

/** Tests that need a Xen dom0: run by scripts/xen-testhost/run inside the Xen test host (npm run test:xen). */
export default defineConfig({
  test: {
    include: ['harness/**/*.xen.test.ts', 'strategies/**/*.xen.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000, // one emulated CPU shared by dom0 and the domUs (scripts/xen-testhost/run)
    hookTimeout: 300_000,
  },
});
