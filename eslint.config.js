// The shape the code keeps without anyone policing it: typescript-eslint's
// recommended rules, and in src/ files of at most 400 lines and functions of
// at most 80. Formatting is Prettier's alone (eslint-config-prettier turns off
// the rules it owns). Import cycles are madge's (`npm run lint:cycles`): it
// follows type-only imports too, which ESLint's cycle rules skip.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', '.bench-out/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Names and list lines are cleaned of control characters on purpose.
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80 }],
    },
  },
  prettier,
);
