/**
 * The events of a run, one schema for SSE, WebSocket, NATS and history (docs/api.md, "Events").
 * Consumers ignore what they do not know: every `data` allows more fields than it names.
 */

export type RunStatus = "pending" | "running" | "paused" | "succeeded" | "partial-succeeded" | "failed" | "stopped";

export type NodeStatus = "running" | "succeeded" | "failed" | "exception" | "stopped" | "retry";

interface EventBase<E extends string, D> {
  event: E;
  workflow_run_id: string;
  task_id: string;
  data: D;
  /** Position in the run, from 1 and without gaps. */
  seq?: number;
}

type Open = { [field: string]: unknown };

export interface WorkflowStartedData extends Open {
  id: string;
  workflow_id: string;
  workflow_version: number;
  inputs: Record<string, unknown>;
  created_at: number;
}

export interface NodeStartedData extends Open {
  id: string;
  node_id: string;
  node_type: string;
  title: string;
  index: number;
  predecessor_node_id: string | null;
  inputs: Record<string, unknown> | null;
  created_at: number;
}

export interface NodeFinishedData extends Open {
  id: string;
  node_id: string;
  node_type: string;
  title: string;
  index: number;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  status: NodeStatus;
  error: string | null;
  elapsed_time: number;
  created_at: number;
  finished_at: number;
  retry_index?: number;
}

export interface TextChunkData extends Open {
  text: string;
  from_variable_selector: string[];
}

export interface ProgressData extends Open {
  completed_steps: number;
  total_steps: number;
  percent: number;
}

export interface PauseData extends Open {
  id: string;
  status: RunStatus;
  created_at: number;
}

export interface WorkflowFinishedData extends Open {
  id: string;
  workflow_id: string;
  status: RunStatus;
  outputs: Record<string, unknown> | null;
  error: string | null;
  elapsed_time: number;
  total_tokens: number;
  total_steps: number;
  created_at: number;
  finished_at: number;
}

export interface ErrorData extends Open {
  code: string;
  status: number;
  message: string;
}

export type WorkflowStartedEvent = EventBase<"workflow_started", WorkflowStartedData>;
export type NodeStartedEvent = EventBase<"node_started", NodeStartedData>;
export type NodeFinishedEvent = EventBase<"node_finished", NodeFinishedData>;
export type NodeRetryEvent = EventBase<"node_retry", NodeFinishedData>;
export type TextChunkEvent = EventBase<"text_chunk", TextChunkData>;
export type WorkflowProgressEvent = EventBase<"workflow_progress", ProgressData>;
export type WorkflowPausedEvent = EventBase<"workflow_paused", PauseData>;
export type WorkflowResumedEvent = EventBase<"workflow_resumed", PauseData>;
export type WorkflowFinishedEvent = EventBase<"workflow_finished", WorkflowFinishedData>;
export type ErrorEvent = EventBase<"error", ErrorData>;
/** Loops and parallel branches, in Dify's shapes. */
export type StructureEvent = EventBase<
  "loop_started" | "loop_next" | "loop_completed" | "parallel_branch_started" | "parallel_branch_finished",
  Open
>;

export type WorkflowEvent =
  | WorkflowStartedEvent
  | NodeStartedEvent
  | NodeFinishedEvent
  | NodeRetryEvent
  | TextChunkEvent
  | WorkflowProgressEvent
  | WorkflowPausedEvent
  | WorkflowResumedEvent
  | WorkflowFinishedEvent
  | ErrorEvent
  | StructureEvent;

/** Events that end a run's stream: nothing follows them. */
export function isFinal(event: WorkflowEvent): event is WorkflowFinishedEvent | ErrorEvent {
  return event.event === "workflow_finished" || event.event === "error";
}
