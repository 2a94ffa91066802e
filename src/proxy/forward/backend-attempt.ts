import type { Dispatcher } from "undici";

/**
 * What one attempt's events go to (the proxy server). `attempt` is the number the attempt was
 * started with: the receiver ignores events of attempts it has since abandoned.
 */
export interface AttemptReceiver<T> {
  attemptStarted(exchange: T, attempt: number, abort: (error?: Error) => void): void;
  /** The response headers arrived; false pauses the response body until `resume` is called. */
  attemptResponse(
    exchange: T,
    attempt: number,
    status: number,
    rawHeaders: Buffer[],
    statusText: string,
    resume: () => void,
  ): boolean;
  /** A piece of the response body; false pauses it. */
  attemptData(exchange: T, attempt: number, chunk: Buffer): boolean;
  attemptComplete(exchange: T, attempt: number): void;
  attemptError(exchange: T, attempt: number, error: Error & { code?: string }): void;
  /** Something above threw: a bug, to be reported loudly (the attempt is then aborted). */
  bug(error: unknown, where: string): void;
}

/**
 * One attempt of a client request on a backend, as undici's dispatch handler: a small object per
 * attempt that passes each event on with its exchange and attempt number, so the hot path adds no
 * closures and no listeners. Informational (1xx) answers are not passed on: Node answers the
 * client's Expect itself, and the backend's final answer is what the client gets. An exception
 * from the receiver is reported as a bug and rethrown, so undici aborts the attempt (and reports
 * that through onError); one from onError itself is only reported, since undici would turn it into
 * an 'error' event nobody listens to.
 */
export class BackendAttempt<T> implements Dispatcher.DispatchHandler {
  constructor(
    private readonly receiver: AttemptReceiver<T>,
    private readonly exchange: T,
    private readonly attempt: number,
  ) {}

  onConnect(abort: (error?: Error) => void): void {
    try {
      this.receiver.attemptStarted(this.exchange, this.attempt, abort);
    } catch (error) {
      this.receiver.bug(error, "backend connect");
      throw error;
    }
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true;
    try {
      return this.receiver.attemptResponse(
        this.exchange,
        this.attempt,
        status,
        rawHeaders,
        statusText,
        resume,
      );
    } catch (error) {
      this.receiver.bug(error, "backend response");
      throw error;
    }
  }

  onData(chunk: Buffer): boolean {
    try {
      return this.receiver.attemptData(this.exchange, this.attempt, chunk);
    } catch (error) {
      this.receiver.bug(error, "backend response body");
      throw error;
    }
  }

  onComplete(): void {
    try {
      this.receiver.attemptComplete(this.exchange, this.attempt);
    } catch (error) {
      this.receiver.bug(error, "backend response end");
      throw error;
    }
  }

  onError(error: Error): void {
    try {
      this.receiver.attemptError(this.exchange, this.attempt, error);
    } catch (bug) {
      this.receiver.bug(bug, "backend error");
    }
  }
}
