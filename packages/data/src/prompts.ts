/** Prompts that training formats and evaluation tasks must spell identically. */

/**
 * The E2E NLG prompt: a meaning representation, then its description after a space (training's
 * `--format e2e` and evaluation's `--task e2e`).
 */
export const E2E_PROMPT = 'Meaning representation: {mr}\nDescription:';
