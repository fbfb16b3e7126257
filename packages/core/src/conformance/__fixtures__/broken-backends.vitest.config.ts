import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['broken-backends.spec.ts'],
    pool: 'threads',
    maxWorkers: 1,
  },
});
