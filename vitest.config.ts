import { defineConfig } from "vitest/config";

// Tests run under Bun (`bun --bun vitest run`) in the threads pool: each test file
// is a worker thread, and the workers it boots are nested inside it.
export default defineConfig({
  test: {
    pool: "threads",
    include: ["**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    exclude: ["node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // One file at a time: each test boots a whole machine (a dozen threads) on a
    // 2-core box, and Bun's first dlopen of libc must not race across machines.
    fileParallelism: false,
  },
});
