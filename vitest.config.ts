import { defineConfig } from 'vitest/config';

// Tests import workspace packages from source (the `@portcullis/source` export condition),
// so a unit run needs no build. Suites that spawn the gateway as a process use the build.
export default defineConfig({
  resolve: { conditions: ['@portcullis/source'] },
  ssr: { resolve: { conditions: ['@portcullis/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['packages/*/src/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
