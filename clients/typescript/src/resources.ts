/** What the REST routes answer (docs/api.md): workflows, runs, node records, statistics. */
import type { RunStatus, WorkflowFinishedData } from "./events.js";

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  size: number;
  pages: number;
}

export interface InputDeclaration {
  name: string;
  type: "string" | "text-input" | "paragraph" | "select" | "number" | "integer" | "boolean" | "object" | "array";
  required?: boolean;
  default?: unknown;
  description?: string;
  options?: string[] | null;
  max_length?: number | null;
}

export interface WorkflowNode {
  id: string;
  type: string;
  name?: string;
  config?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface WorkflowConnection {
  from: string;
  to: string;
  type?: string;
}

export interface WorkflowDefinition {
  name: string;
  description?: string;
  tags?: string[];
  config?: Record<string, unknown>;
  nodes: WorkflowNode[];
  connections: WorkflowConnection[];
}

export interface WorkflowSummary {
  id: string;
  name: string;
  description: string;
  tags: string[];
  version: number;
  draft: boolean;
  created_at: number;
  updated_at: number;
}

export interface Workflow extends WorkflowSummary {
  problems: string[];
  definition: WorkflowDefinition;
}

export interface Run {
  id: string;
  task_id: string | null;
  workflow_id: string;
  workflow_version: number | null;
  execution_name?: string | null;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  status: RunStatus;
  error: string | null;
  elapsed_ms: number | null;
  total_steps: number | null;
  total_tokens: number | null;
  created_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  last_seq: number;
}

export interface NodeExecution {
  id: string;
  run_id: string;
  workflow_id: string;
  node_id: string;
  node_type: string;
  title: string | null;
  index: number | null;
  attempt: number;
  status: string;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  error: string | null;
  elapsed_ms: number | null;
  created_at: number | null;
  finished_at: number | null;
}

export interface RunDetail extends Run {
  nodes: NodeExecution[];
}

export interface TimelineEntry {
  seq: number;
  event: string;
  payload: Record<string, unknown>;
}

export interface WorkflowStats {
  workflow_id: string;
  total: number;
  finished: number;
  succeeded: number;
  success_rate: number | null;
  avg_duration_ms: number | null;
  p95_duration_ms: number | null;
  slowest_node: Record<string, unknown> | null;
  errors_by_type: Record<string, number>;
}

export interface StartedRun {
  id: string;
  task_id: string;
  workflow_id: string;
  workflow_version: number;
  status: RunStatus;
  events_url: string;
}

/** The answer of a blocking run (`response_mode: "blocking"`). */
export interface BlockingResult {
  task_id: string;
  workflow_run_id: string;
  data: Pick<WorkflowFinishedData, "id" | "workflow_id" | "status" | "outputs" | "error" | "elapsed_time" | "total_tokens" | "total_steps" | "created_at" | "finished_at">;
}

export interface RunFilters {
  workflow_id?: string | undefined;
  status?: RunStatus | undefined;
  created_after?: number | undefined;
  created_before?: number | undefined;
  page?: number | undefined;
  size?: number | undefined;
}

export interface WorkflowFilters {
  q?: string | undefined;
  tag?: string | undefined;
  page?: number | undefined;
  size?: number | undefined;
}
