/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {}

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
