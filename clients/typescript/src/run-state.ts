/**
 * Folds a run's events into what a screen shows: the run's status, each node's status, timing
 * and streamed text, the progress. Pure, so a UI re-renders from it and a test checks it alone.
 */
import type { NodeStatus, RunStatus, WorkflowEvent, WorkflowFinishedData } from "./events.js";

export interface NodeState {
  nodeId: string;
  title: string;
  nodeType: string;
  status: NodeStatus | "pending";
  startedAt: number | null;
  elapsedTime: number | null;
  text: string;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  error: string | null;
  attempts: number;
}

export interface RunState {
  runId: string | null;
  status: RunStatus | "idle";
  nodes: Record<string, NodeState>;
  /** Node ids in the order they started. */
  order: string[];
  /** Every streamed text chunk, in order. */
  text: string;
  percent: number;
  result: WorkflowFinishedData | null;
  error: string | null;
  lastSeq: number;
}

export const initialRunState: RunState = {
  runId: null,
  status: "idle",
  nodes: {},
  order: [],
  text: "",
  percent: 0,
  result: null,
  error: null,
  lastSeq: 0,
};

function node(state: RunState, nodeId: string): NodeState {
  return (
    state.nodes[nodeId] ?? {
      nodeId,
      title: nodeId,
      nodeType: "",
      status: "pending",
      startedAt: null,
      elapsedTime: null,
      text: "",
      inputs: null,
      outputs: null,
      error: null,
      attempts: 0,
    }
  );
}

function withNode(state: RunState, next: NodeState): RunState {
  const order = state.order.includes(next.nodeId) ? state.order : [...state.order, next.nodeId];
  return { ...state, nodes: { ...state.nodes, [next.nodeId]: next }, order };
}

export function applyEvent(state: RunState, event: WorkflowEvent): RunState {
  if (typeof event.seq === "number") {
    if (event.seq <= state.lastSeq) return state;
    state = { ...state, lastSeq: event.seq };
  }
  switch (event.event) {
    case "workflow_started":
      return { ...state, runId: event.workflow_run_id, status: "running" };
    case "node_started": {
      const current = node(state, event.data.node_id);
      return withNode(state, {
        ...current,
        title: event.data.title || current.title,
        nodeType: event.data.node_type,
        status: "running",
        startedAt: event.data.created_at,
        inputs: event.data.inputs,
        attempts: current.attempts + 1,
      });
    }
    case "node_retry":
    case "node_finished": {
      const current = node(state, event.data.node_id);
      return withNode(state, {
        ...current,
        title: event.data.title || current.title,
        nodeType: event.data.node_type,
        status: event.data.status,
        elapsedTime: event.data.elapsed_time,
        inputs: event.data.inputs ?? current.inputs,
        outputs: event.data.outputs,
        error: event.data.error,
      });
    }
    case "text_chunk": {
      const nodeId = event.data.from_variable_selector[0];
      const next = { ...state, text: state.text + event.data.text };
      if (nodeId === undefined) return next;
      const current = node(next, nodeId);
      return withNode(next, { ...current, text: current.text + event.data.text });
    }
    case "workflow_progress":
      return { ...state, percent: event.data.percent };
    case "workflow_paused":
      return { ...state, status: "paused" };
    case "workflow_resumed":
      return { ...state, status: "running" };
    case "workflow_finished":
      return {
        ...state,
        status: event.data.status,
        result: event.data,
        error: event.data.error,
        percent: event.data.status === "succeeded" ? 100 : state.percent,
      };
    case "error":
      return { ...state, status: "failed", error: event.data.message };
    default:
      return state;
  }
}

/** The state after all `events`: for a finished run's timeline, or a test. */
export function foldEvents(events: Iterable<WorkflowEvent>): RunState {
  let state = initialRunState;
  for (const event of events) state = applyEvent(state, event);
  return state;
}
