/** Run a workflow from a form built from its START inputs and watch its graph light up. */
import type { WorkflowAPI, WorkflowEvent } from "@flowstream/client";
import { useWorkflowRun } from "@flowstream/client/react";
import { useState } from "react";
import { Dag } from "../components/Dag";
import { RunForm, startInputs } from "../components/RunForm";
import { duration } from "../format";
import { href } from "../route";
import { useLoad } from "../useLoad";
import { NodeDetail } from "./NodeDetail";

export function WorkflowPage({ api, id }: { api: WorkflowAPI; id: string }) {
  const { data: workflow, error } = useLoad(() => api.workflows.get(id), [api, id]);
  const [events, setEvents] = useState<WorkflowEvent[]>([]);
  const run = useWorkflowRun(api, { onEvent: (event) => setEvents((list) => [...list, event]) });
  const [selected, setSelected] = useState<string | null>(null);
  const { state } = run;

  if (error) return <p className="error">{error.message}</p>;
  if (!workflow) return <p className="muted">Loading…</p>;
  const node = selected ? state.nodes[selected] : undefined;
  const start = (inputs: Record<string, unknown>) => {
    setEvents([]);
    setSelected(null);
    void run.run(workflow.id, inputs);
  };

  return (
    <section className="workflow-page">
      <div className="toolbar">
        <h2>{workflow.name}</h2>
        <span className="muted">version {workflow.version}</span>
        <a href={href("workflows", workflow.id, "stats")}>Statistics</a>
        <a href={`#/runs?workflow_id=${encodeURIComponent(workflow.id)}`}>Runs</a>
      </div>
      {workflow.description && <p className="muted">{workflow.description}</p>}
      <div className="split">
        <div className="side">
          <RunForm inputs={startInputs(workflow.definition)} disabled={run.running || workflow.draft} onRun={start} />
          {state.status !== "idle" && (
            <div className="run-panel">
              <div className="run-status">
                <span className={`badge badge-${state.status}`} data-testid="run-status">
                  {state.status}
                </span>
                {state.result && <span className="muted">{duration(state.result.elapsed_time * 1000)}</span>}
                {state.runId && (
                  <a href={href("runs", state.runId)} data-testid="run-link">
                    run details
                  </a>
                )}
              </div>
              <progress max={100} value={state.percent} />
              <div className="buttons">
                {run.running && (
                  <button type="button" onClick={() => void run.stop()} data-testid="stop-button">
                    Stop
                  </button>
                )}
                {state.status === "running" && (
                  <button type="button" onClick={() => void run.pause()} data-testid="pause-button">
                    Pause
                  </button>
                )}
                {state.status === "paused" && (
                  <button type="button" onClick={() => void run.resume()} data-testid="resume-button">
                    Resume
                  </button>
                )}
              </div>
              {state.error && <p className="error">{state.error}</p>}
              <h4>Streamed text</h4>
              <pre className="stream" data-testid="streamed-text">
                {state.text}
              </pre>
              {state.result?.outputs && (
                <>
                  <h4>Outputs</h4>
                  <pre className="json" data-testid="run-outputs">
                    {JSON.stringify(state.result.outputs, null, 2)}
                  </pre>
                </>
              )}
            </div>
          )}
        </div>
        <div className="main">
          <Dag definition={workflow.definition} nodes={state.nodes} selected={selected} onSelect={setSelected} />
          {node && (
            <NodeDetail
              title={node.title}
              status={node.status}
              elapsedMs={node.elapsedTime === null ? null : node.elapsedTime * 1000}
              inputs={node.inputs}
              outputs={node.outputs}
              error={node.error}
              onClose={() => setSelected(null)}
            />
          )}
          {events.length > 0 && (
            <details className="events">
              <summary>{events.length} events</summary>
              <ol>
                {events.map((e, i) => (
                  <li key={e.seq ?? `at-${i}`}>
                    <code>{e.seq}</code> {e.event}
                    {"node_id" in e.data ? ` · ${String(e.data.node_id)}` : ""}
                  </li>
                ))}
              </ol>
            </details>
          )}
        </div>
      </div>
    </section>
  );
}
