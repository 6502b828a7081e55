import { useCallback, useEffect, useReducer, useRef } from "react";
import type { WorkflowAPI } from "../api.js";
import type { FlowstreamError } from "../errors.js";
import type { WorkflowEvent, WorkflowFinishedData } from "../events.js";
import { applyEvent, initialRunState, type RunState } from "../run-state.js";

type Action = { type: "reset" } | { type: "event"; event: WorkflowEvent } | { type: "failed"; message: string };

function reduce(state: RunState, action: Action): RunState {
  if (action.type === "reset") return { ...initialRunState, status: "pending" };
  if (action.type === "failed") return { ...state, status: "failed", error: action.message };
  return applyEvent(state, action.event);
}

export interface RunCallbacks {
  onEvent?: ((event: WorkflowEvent) => void) | undefined;
  onFinished?: ((result: WorkflowFinishedData) => void) | undefined;
  onError?: ((error: FlowstreamError) => void) | undefined;
}

export interface WorkflowRun {
  state: RunState;
  running: boolean;
  /** Starts a run (stopping the one before, if any) and follows it. */
  run(workflowId: string, inputs: Record<string, unknown>): Promise<void>;
  /** Follows an existing run from its start. */
  watch(runId: string): Promise<void>;
  /** Asks the server to stop the run; its final event arrives on the stream. */
  stop(): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/** One run at a time, its state folded from its events; leaving the page stops a run it started. */
export function useWorkflowRun(api: WorkflowAPI, callbacks: RunCallbacks = {}): WorkflowRun {
  const [state, dispatch] = useReducer(reduce, initialRunState);
  const controller = useRef<AbortController | null>(null);
  const runId = useRef<string | null>(null);
  const latest = useRef(callbacks);
  latest.current = callbacks;

  useEffect(() => () => controller.current?.abort(), []);

  const follow = useCallback(async (events: (signal: AbortSignal) => AsyncIterable<WorkflowEvent>) => {
    controller.current?.abort();
    const mine = new AbortController();
    controller.current = mine;
    runId.current = null;
    dispatch({ type: "reset" });
    try {
      for await (const event of events(mine.signal)) {
        runId.current = event.workflow_run_id;
        dispatch({ type: "event", event });
        latest.current.onEvent?.(event);
        if (event.event === "workflow_finished") latest.current.onFinished?.(event.data);
      }
    } catch (error) {
      if (!mine.signal.aborted) {
        const failure = error as FlowstreamError;
        dispatch({ type: "failed", message: failure.message });
        latest.current.onError?.(failure);
      }
    } finally {
      if (controller.current === mine) controller.current = null;
    }
  }, [api]);

  const run = useCallback(
    (workflowId: string, inputs: Record<string, unknown>) =>
      follow((signal) => api.stream(workflowId, inputs, { signal })),
    [api, follow],
  );
  const watch = useCallback((id: string) => follow((signal) => api.attach(id, { signal })), [api, follow]);
  const control = useCallback(
    async (action: "cancel" | "pause" | "resume") => {
      if (runId.current) await api[action](runId.current);
    },
    [api],
  );

  return {
    state,
    running: state.status === "pending" || state.status === "running" || state.status === "paused",
    run,
    watch,
    stop: () => control("cancel"),
    pause: () => control("pause"),
    resume: () => control("resume"),
  };
}
