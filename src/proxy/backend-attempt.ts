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
}

/**
 * One attempt of a client request on a backend, as undici's dispatch handler: a small object per
 * attempt that passes each event on with its exchange and attempt number, so the hot path adds no
 * closures and no listeners. Informational (1xx) answers are not passed on: Node answers the
 * client's Expect itself, and the backend's final answer is what the client gets.
 */
export class BackendAttempt<T> implements Dispatcher.DispatchHandler {
  constructor(
    private readonly receiver: AttemptReceiver<T>,
    private readonly exchange: T,
    private readonly attempt: number,
  ) {}

  onConnect(abort: (error?: Error) => void): void {
    this.receiver.attemptStarted(this.exchange, this.attempt, abort);
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200) return true;
    return this.receiver.attemptResponse(this.exchange, this.attempt, status, rawHeaders, statusText, resume);
  }

  onData(chunk: Buffer): boolean {
    return this.receiver.attemptData(this.exchange, this.attempt, chunk);
  }

  onComplete(): void {
    this.receiver.attemptComplete(this.exchange, this.attempt);
  }

  onError(error: Error): void {
    this.receiver.attemptError(this.exchange, this.attempt, error);
  }
}
