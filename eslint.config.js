// One lint setup for every package. Pure packages get extra rules that keep I/O out.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeIo = [
  'node:net',
  'node:tls',
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:worker_threads',
  'node:cluster',
  'node:http',
  'node:dgram',
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.nx/**', '.portcullis/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: [
      'packages/core/src/**/*.ts',
      'packages/protocol-pg/src/**/*.ts',
      'packages/sql/src/**/*.ts',
      'packages/masking/src/**/*.ts',
    ],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: nodeIo.map((name) => ({ name, message: 'pure packages do no I/O' })) },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'pure packages never read process state' },
      ],
    },
  },
  {
    files: [
      'packages/cli/src/**/*.ts',
      'bench/**',
      'packages/testkit/src/**/*.ts',
      '**/*.test.ts',
      'test/**',
    ],
    rules: { 'no-console': 'off' },
  },
);
