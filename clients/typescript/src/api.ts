/**
 * `createWorkflowAPI({baseUrl, token})`: the seed's `workflowAPI`, and the rest of the API a
 * front end needs to find workflows and follow, steer and inspect their runs.
 */
import { FlowstreamError, isAbort } from "./errors.js";
import type { WorkflowEvent } from "./events.js";
import { createTransport, query, type TokenSource } from "./http.js";
import type {
  BlockingResult,
  Page,
  Run,
  RunDetail,
  RunFilters,
  StartedRun,
  TimelineEntry,
  Workflow,
  WorkflowFilters,
  WorkflowStats,
  WorkflowSummary,
} from "./resources.js";
import { attachPath, followRun, type ResumeOptions } from "./run-stream.js";

export interface ClientOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`; empty for the page's own origin. */
  baseUrl?: string;
  /** A user JWT or an app key; a function is asked again for every request. */
  token?: TokenSource;
  /** Resume policy for every stream (default: resume, 8 attempts). */
  resume?: ResumeOptions | boolean;
  fetch?: typeof fetch;
}

export interface StreamOptions {
  /** Aborting stops the run (a cancel request), then closes the stream. */
  signal?: AbortSignal;
  /** A stored version; the latest when absent. */
  version?: number;
  /**
   * What a dropped connection does to the run. `continue` (the default here) lets the run go on
   * so the stream can be resumed; the client stops the run itself when `signal` aborts.
   */
  onDisconnect?: "continue" | "cancel";
  resume?: ResumeOptions | boolean;
}

export interface AttachOptions {
  /** The `id:` of the last frame already seen: the stream continues after it. */
  lastEventId?: string;
  /** Aborting closes the stream only: watching a run never stops it. */
  signal?: AbortSignal;
  resume?: ResumeOptions | boolean;
}

export type MessageHandler = (event: WorkflowEvent) => void;
export type ErrorHandler = (error: FlowstreamError) => void;

export interface WorkflowAPI {
  /**
   * Runs a workflow and hands each event to `onMessage` as it happens, resuming dropped streams.
   * Resolves when the run has ended (or `signal` aborted); failures go to `onError`, never a
   * rejection.
   */
  executeWorkflowStream(
    workflowId: string,
    inputs: Record<string, unknown>,
    onMessage: MessageHandler,
    onError: ErrorHandler,
    options?: StreamOptions,
  ): Promise<void>;
  /** The same run as an async iterable: `for await (const event of api.stream(id, inputs))`. */
  stream(workflowId: string, inputs: Record<string, unknown>, options?: StreamOptions): AsyncGenerator<WorkflowEvent, void, undefined>;
  /** Runs a workflow and waits for its end (`response_mode: "blocking"`). */
  execute(workflowId: string, inputs: Record<string, unknown>, options?: { signal?: AbortSignal; version?: number }): Promise<BlockingResult>;
  /** Starts a run and returns at once; follow it with `attach`. */
  start(workflowId: string, inputs: Record<string, unknown>, options?: { version?: number; executionName?: string }): Promise<StartedRun>;
  /** Follows a running or finished run, from its start or after `lastEventId`. */
  attach(runId: string, options?: AttachOptions): AsyncGenerator<WorkflowEvent, void, undefined>;
  cancel(runId: string): Promise<void>;
  pause(runId: string): Promise<void>;
  resume(runId: string): Promise<void>;
  workflows: {
    list(filters?: WorkflowFilters): Promise<Page<WorkflowSummary>>;
    get(workflowId: string, version?: number): Promise<Workflow>;
    stats(workflowId: string): Promise<WorkflowStats>;
  };
  runs: {
    list(filters?: RunFilters): Promise<Page<Run>>;
    get(runId: string): Promise<RunDetail>;
    timeline(runId: string): Promise<TimelineEntry[]>;
  };
}

function toFlowstreamError(error: unknown): FlowstreamError {
  if (error instanceof FlowstreamError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FlowstreamError("client_error", message, 0, { cause: error });
}

export function createWorkflowAPI(options: ClientOptions = {}): WorkflowAPI {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const transport = createTransport(options.baseUrl ?? "", options.token, fetchImpl);
  const control = (runId: string, action: string): Promise<void> =>
    transport
      .send(`/api/executions/${encodeURIComponent(runId)}/${action}`, { method: "POST" })
      .then(() => undefined);

  const api: WorkflowAPI = {
    stream(workflowId, inputs, streamOptions = {}) {
      const body = {
        inputs,
        response_mode: "streaming",
        on_disconnect: streamOptions.onDisconnect ?? "continue",
        ...(streamOptions.version !== undefined ? { version: streamOptions.version } : {}),
      };
      return followRun(
        transport,
        (signal) =>
          transport.send(`/api/workflow/${encodeURIComponent(workflowId)}/execute`, {
            method: "POST",
            json: body,
            headers: { Accept: "text/event-stream" },
            signal,
          }),
        {
          signal: streamOptions.signal,
          resume: streamOptions.resume ?? options.resume,
          cancelOnAbort: (runId) => control(runId, "cancel"),
        },
      );
    },

    async executeWorkflowStream(workflowId, inputs, onMessage, onError, streamOptions) {
      try {
        for await (const event of api.stream(workflowId, inputs, streamOptions)) {
          onMessage(event);
          if (event.event === "error") {
            onError(new FlowstreamError(event.data.code, event.data.message, event.data.status));
          }
        }
      } catch (error) {
        if (isAbort(error)) return; // the caller asked for it: not a failure to report
        onError(toFlowstreamError(error));
      }
    },

    execute(workflowId, inputs, executeOptions = {}) {
      return transport.json<BlockingResult>(`/api/workflow/${encodeURIComponent(workflowId)}/execute`, {
        method: "POST",
        json: {
          inputs,
          response_mode: "blocking",
          ...(executeOptions.version !== undefined ? { version: executeOptions.version } : {}),
        },
        ...(executeOptions.signal ? { signal: executeOptions.signal } : {}),
      });
    },

    start(workflowId, inputs, startOptions = {}) {
      return transport.json<StartedRun>("/api/executions", {
        method: "POST",
        json: {
          workflow_id: workflowId,
          inputs,
          ...(startOptions.version !== undefined ? { version: startOptions.version } : {}),
          ...(startOptions.executionName !== undefined ? { execution_name: startOptions.executionName } : {}),
        },
      });
    },

    attach(runId, attachOptions = {}) {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (attachOptions.lastEventId !== undefined) headers["Last-Event-ID"] = attachOptions.lastEventId;
      return followRun(
        transport,
        (signal) => transport.send(attachPath(runId), { method: "GET", headers, signal }),
        {
          runId,
          lastEventId: attachOptions.lastEventId,
          signal: attachOptions.signal,
          resume: attachOptions.resume ?? options.resume,
        },
      );
    },

    cancel: (runId) => control(runId, "cancel"),
    pause: (runId) => control(runId, "pause"),
    resume: (runId) => control(runId, "resume"),

    workflows: {
      list: (filters = {}) => transport.json(`/api/workflows${query({ ...filters })}`),
      get: (workflowId, version) =>
        transport.json(`/api/workflows/${encodeURIComponent(workflowId)}${query({ version })}`),
      stats: (workflowId) => transport.json(`/api/workflows/${encodeURIComponent(workflowId)}/stats`),
    },

    runs: {
      list: (filters = {}) => transport.json(`/api/executions${query({ ...filters })}`),
      get: (runId) => transport.json(`/api/executions/${encodeURIComponent(runId)}`),
      timeline: (runId) => transport.json(`/api/executions/${encodeURIComponent(runId)}/history`),
    },
  };
  return api;
}
