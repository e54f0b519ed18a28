/**
 * Polls `check` every 100 ms until it resolves true; a check that throws (a
 * member not answering yet) counts as false. Throws naming `what` after
 * `timeoutMs` (generous: the machine may be loaded). For real-process tests.
 */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
