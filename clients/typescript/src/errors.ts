/**
 * Every failure the client reports is a FlowstreamError carrying the API's error body
 * (`{code, message, status}`), so callers branch on `code`, never on message text.
 */
export class FlowstreamError extends Error {
  readonly code: string;
  readonly status: number;
  /** Whether trying again later may succeed (a lost connection, a 5xx, a 429). */
  readonly retryable: boolean;

  constructor(code: string, message: string, status: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FlowstreamError";
    this.code = code;
    this.status = status;
    this.retryable = status === 0 || status === 429 || status >= 500;
  }
}

/** A connection that failed or dropped before the server answered; status 0 like a browser's. */
export function connectionError(cause: unknown): FlowstreamError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new FlowstreamError("connection_error", `connection failed: ${detail}`, 0, { cause });
}

export function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

/** The error a non-2xx answer stands for, read from its body when it is the API's error shape. */
export async function errorFromResponse(response: Response): Promise<FlowstreamError> {
  const text = await response.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    if (isErrorBody(body)) return new FlowstreamError(body.code, body.message, response.status);
  } catch {
    // not JSON: fall through to a generic error naming the status
  }
  const message = text.trim() || response.statusText || `HTTP ${response.status}`;
  return new FlowstreamError(`http_${response.status}`, message, response.status);
}

function isErrorBody(body: unknown): body is { code: string; message: string } {
  if (typeof body !== "object" || body === null) return false;
  const { code, message } = body as Record<string, unknown>;
  return typeof code === "string" && typeof message === "string";
}
