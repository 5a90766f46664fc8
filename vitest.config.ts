import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // vitest's default is one worker per CPU but one, so a 2-core CI machine runs the files one after the other;
    // most of the long files wait on real clients, servers and drills rather than compute, so two overlap well
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
  },
});
