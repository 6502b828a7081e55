import type { WorkflowAPI } from "../api.js";
import type { WorkflowEvent, WorkflowFinishedData } from "../events.js";
import { useWorkflowAPI } from "./context.js";
import { useWorkflowRun } from "./useWorkflowRun.js";

export interface StreamWorkflowExecutorProps {
  workflowId: string;
  inputs: Record<string, unknown>;
  /** Called once with the run's final data (`workflow_finished.data`), whatever its status. */
  onComplete?: (result: WorkflowFinishedData) => void;
  /** Called with every event as it arrives. */
  onProgress?: (event: WorkflowEvent) => void;
  /** Defaults to the one of the nearest <FlowstreamProvider>. */
  api?: WorkflowAPI;
  className?: string;
}

/**
 * A button that runs a workflow and shows it live: status, progress, the node running and the
 * streamed text. Unmounting while the run goes on stops the run.
 */
export function StreamWorkflowExecutor({
  workflowId,
  inputs,
  onComplete,
  onProgress,
  api,
  className,
}: StreamWorkflowExecutorProps) {
  const client = useWorkflowAPI(api);
  const { state, running, run, stop } = useWorkflowRun(client, {
    onEvent: onProgress,
    onFinished: onComplete,
  });
  const current = [...state.order].reverse().find((id) => state.nodes[id]?.status === "running");

  return (
    <div className={className ?? "flowstream-executor"} data-status={state.status}>
      <button type="button" onClick={() => void (running ? stop() : run(workflowId, inputs))}>
        {running ? "Stop" : "Execute"}
      </button>
      <span className="flowstream-status" role="status">
        {state.status}
        {current ? ` · ${state.nodes[current]?.title ?? current}` : ""}
      </span>
      <progress max={100} value={state.percent} />
      {state.text && <pre className="flowstream-text">{state.text}</pre>}
      {state.error && <p className="flowstream-error">{state.error}</p>}
      <ol className="flowstream-nodes">
        {state.order.map((id) => {
          const node = state.nodes[id];
          if (!node) return null;
          const took = node.elapsedTime === null ? "" : ` (${(node.elapsedTime * 1000).toFixed(0)} ms)`;
          return (
            <li key={id} data-status={node.status}>
              {node.title}: {node.status}
              {took}
            </li>
          );
        })}
      </ol>
    </div>
  );
}
