/**
 * A failure the user can act on. The CLI prints it as one line: the message, then what to do.
 * Anything that is not an XmeError is a bug in xme and is printed with its stack.
 */
export class XmeError extends Error {
  constructor(
    message: string,
    /** What the user should do about it, e.g. "install it: apt-get install qemu-system-x86". */
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'XmeError';
  }

  /** One line for the console. */
  oneLine(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof XmeError) return error.oneLine();
  if (error instanceof Error) return error.message;
  return String(error);
}

/** A command-line mistake: printed with a pointer to --help, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
