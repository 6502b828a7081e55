/**
 * Follows one run's events to its end, across dropped connections.
 *
 * A stream that ends without `workflow_finished` (a dropped connection, or the gateway's `resume`
 * frame during a rolling restart) is re-opened on the run's attach URL with `Last-Event-ID` set to
 * the `id:` of the last frame that arrived whole. The cursor is opaque: it is only ever echoed.
 * Events are deduplicated by `seq` as a safety net, so a replay never yields an event twice.
 */
import { FlowstreamError, isAbort } from "./errors.js";
import type { WorkflowEvent } from "./events.js";
import { isFinal } from "./events.js";
import type { Transport } from "./http.js";
import { type Frame, readFrames } from "./sse.js";

export interface ResumeOptions {
  /** Re-open dropped streams (default true). */
  enabled?: boolean;
  /** Consecutive failed re-opens before giving up (default 8); reset by every event received. */
  maxAttempts?: number;
  /** Wait before the first re-open unless the server sent `retry:` (default 1000 ms). */
  initialDelayMs?: number;
  /** Upper bound of the exponential back-off between re-opens (default 15000 ms). */
  maxDelayMs?: number;
}

export interface FollowOptions {
  signal?: AbortSignal | undefined;
  resume?: ResumeOptions | boolean | undefined;
  /** Known when attaching; learnt from the first event when the stream starts the run. */
  runId?: string | undefined;
  /** Resume after this cursor (attach) — the `id:` of a frame already seen. */
  lastEventId?: string | undefined;
  /** Called when the caller aborts: stop the run itself, not only the connection to it. */
  cancelOnAbort?: ((runId: string) => Promise<unknown>) | undefined;
}

/** How a run's first stream is opened: a POST that starts the run, or an attach. */
export type OpenStream = (signal: AbortSignal) => Promise<Response>;

interface ResumeFrame {
  workflow_run_id?: string;
  data?: { url?: string; last_event_id?: string | number };
}

const ABORT_GRACE_MS = 3000;

export function attachPath(runId: string): string {
  return `/api/executions/${encodeURIComponent(runId)}/events`;
}

function resolveResume(options: FollowOptions["resume"]): Required<ResumeOptions> {
  const given = typeof options === "object" ? options : { enabled: options ?? true };
  return {
    enabled: given.enabled ?? true,
    maxAttempts: given.maxAttempts ?? 8,
    initialDelayMs: given.initialDelayMs ?? 1000,
    maxDelayMs: given.maxDelayMs ?? 15000,
  };
}

function abortError(): Error {
  return new DOMException("The run's stream was aborted", "AbortError");
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function parseEvent(frame: Frame): WorkflowEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(frame.data);
  } catch (error) {
    throw new FlowstreamError("invalid_event", `a frame is not JSON: ${frame.data.slice(0, 80)}`, 0, {
      cause: error,
    });
  }
  if (typeof parsed !== "object" || parsed === null || typeof (parsed as { event?: unknown }).event !== "string") {
    throw new FlowstreamError("invalid_event", `a frame is not an event: ${frame.data.slice(0, 80)}`, 0);
  }
  return parsed as WorkflowEvent;
}

/** A same-origin path from the server's resume URL; anything else falls back to the attach path. */
function samePath(transport: Transport, url: string | undefined, runId: string): string {
  if (url && url.startsWith("/") && !url.startsWith("//")) return url;
  if (url && url.startsWith(transport.baseUrl + "/")) return url.slice(transport.baseUrl.length);
  return attachPath(runId);
}

export async function* followRun(
  transport: Transport,
  open: OpenStream,
  options: FollowOptions = {},
): AsyncGenerator<WorkflowEvent, void, undefined> {
  const resume = resolveResume(options.resume);
  const connection = new AbortController();
  let runId = options.runId;
  let cursor = options.lastEventId;
  let lastSeq = 0;
  let retryMs = resume.initialDelayMs;
  let resumePath: string | undefined;
  let abortRequested = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  let cancelling: Promise<unknown> | undefined;

  const stop = (): void => {
    if (cancelling !== undefined || runId === undefined) return;
    cancelling = (options.cancelOnAbort?.(runId) ?? Promise.resolve()).catch(() => undefined);
    void cancelling.finally(() => connection.abort());
  };
  const onAbort = (): void => {
    abortRequested = true;
    if (runId !== undefined || options.cancelOnAbort === undefined) {
      stop();
      if (runId === undefined) connection.abort();
      return;
    }
    // The run's id arrives with its first event: wait a moment for it, so the run can be stopped.
    graceTimer = setTimeout(() => connection.abort(), ABORT_GRACE_MS);
  };
  if (options.signal?.aborted) throw abortError();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const reopen = async (attempt: number, afterResumeFrame: boolean): Promise<Response> => {
    const delay = afterResumeFrame
      ? retryMs
      : Math.min(retryMs * 2 ** Math.max(0, attempt - 1), resume.maxDelayMs);
    await sleep(delay, connection.signal);
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (cursor !== undefined) headers["Last-Event-ID"] = cursor;
    return transport.send(samePath(transport, resumePath, runId as string), {
      method: "GET",
      headers,
      signal: connection.signal,
    });
  };

  try {
    let response: Response = await open(connection.signal);
    let attempt = 0;
    for (;;) {
      let endedByResumeFrame = false;
      let dropped: unknown;
      try {
        if (!response.body) throw new FlowstreamError("stream_ended", "the response has no body", 0);
        for await (const frame of readFrames(response.body, (ms) => (retryMs = ms))) {
          if (abortRequested && runId !== undefined) throw abortError();
          if (frame.data === "[DONE]") return;
          if (frame.event === "resume") {
            const hint = JSON.parse(frame.data) as ResumeFrame;
            runId ??= hint.workflow_run_id;
            resumePath = hint.data?.url;
            if (hint.data?.last_event_id !== undefined) cursor = String(hint.data.last_event_id);
            endedByResumeFrame = true;
            break;
          }
          const event = parseEvent(frame);
          if (frame.id !== undefined) cursor = frame.id;
          if (runId === undefined && event.workflow_run_id) {
            runId = event.workflow_run_id;
            if (abortRequested) {
              clearTimeout(graceTimer);
              stop();
            }
          }
          if (typeof event.seq === "number") {
            if (event.seq <= lastSeq) continue; // a replayed event already delivered
            lastSeq = event.seq;
          }
          attempt = 0;
          yield event;
          if (isFinal(event)) return;
        }
      } catch (error) {
        if (abortRequested || isAbort(error)) throw abortError();
        if (error instanceof FlowstreamError && error.code === "invalid_event") throw error;
        dropped = error;
      }
      if (abortRequested) throw abortError();
      // The stream ended without the run's end: follow it again from where it stopped.
      if (runId === undefined) {
        throw new FlowstreamError("stream_ended", "the stream ended before the run started", 0, {
          cause: dropped,
        });
      }
      if (!resume.enabled) {
        throw new FlowstreamError("stream_dropped", `the stream of run ${runId} ended early`, 0, {
          cause: dropped,
        });
      }
      for (;;) {
        attempt += 1;
        if (attempt > resume.maxAttempts) {
          throw new FlowstreamError(
            "stream_dropped",
            `the stream of run ${runId} could not be resumed after ${resume.maxAttempts} attempts`,
            0,
            { cause: dropped },
          );
        }
        try {
          response = await reopen(attempt, endedByResumeFrame && attempt === 1);
          break;
        } catch (error) {
          if (abortRequested || isAbort(error)) throw abortError();
          if (!(error instanceof FlowstreamError) || !error.retryable) throw error;
          dropped = error;
        }
      }
    }
  } finally {
    clearTimeout(graceTimer);
    options.signal?.removeEventListener("abort", onAbort);
    if (cancelling !== undefined) await cancelling;
    connection.abort();
  }
}
