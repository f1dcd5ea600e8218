/**
 * Errors of the web front end.
 *
 * @module
 */

/** A request the server refuses; `status` is the HTTP status it answers with. */
export class HttpError extends Error {
  override name = "HttpError";
  /** HTTP status code (400, 404, 408, 413, 429, 431, 503…). */
  readonly status: number;

  /** @param status the HTTP status; @param message the one-line reason (sent as the body). */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}
