/**
 * One run: its graph coloured by what each node did, its timeline, and each node's inputs and
 * outputs. A run still going is followed live; a finished one is read from its recorded history.
 */
import {
  foldEvents,
  type RunDetail,
  type TimelineEntry,
  type WorkflowAPI,
  type WorkflowEvent,
} from "@flowstream/client";
import { useWorkflowRun } from "@flowstream/client/react";
import { useEffect, useState } from "react";
import { Dag } from "../components/Dag";
import { Json } from "../components/Json";
import { duration, when } from "../format";
import { href } from "../route";
import { useLoad } from "../useLoad";
import { NodeDetail } from "./NodeDetail";

const ENDED = new Set(["succeeded", "partial-succeeded", "failed", "stopped"]);

interface Recorded {
  detail: RunDetail | null;
  timeline: TimelineEntry[];
}

async function loadRecorded(api: WorkflowAPI, id: string): Promise<Recorded> {
  try {
    const detail = await api.runs.get(id);
    const timeline = ENDED.has(detail.status) ? await api.runs.timeline(id) : [];
    return { detail, timeline };
  } catch (error) {
    // Not recorded yet (history lags the event log by a moment): follow the run live instead.
    if ((error as { status?: number }).status === 404) return { detail: null, timeline: [] };
    throw error;
  }
}

function describe(event: WorkflowEvent): string {
  const data = event.data as Record<string, unknown>;
  switch (event.event) {
    case "node_started":
      return `${String(data.title ?? data.node_id)} started`;
    case "node_finished":
    case "node_retry":
      return `${String(data.title ?? data.node_id)} ${String(data.status)} in ${duration(Number(data.elapsed_time) * 1000)}${data.error ? `: ${String(data.error)}` : ""}`;
    case "text_chunk":
      return JSON.stringify(data.text);
    case "workflow_progress":
      return `${String(data.percent)} %`;
    case "workflow_finished":
      return `${String(data.status)} in ${duration(Number(data.elapsed_time) * 1000)}${data.error ? `: ${String(data.error)}` : ""}`;
    default:
      return "";
  }
}

export function RunPage({ api, id }: { api: WorkflowAPI; id: string }) {
  const recorded = useLoad(() => loadRecorded(api, id), [api, id]);
  const [liveEvents, setLiveEvents] = useState<WorkflowEvent[]>([]);
  const live = useWorkflowRun(api, {
    onEvent: (event) => setLiveEvents((list) => [...list, event]),
    onFinished: () => recorded.reload(),
  });
  const [selected, setSelected] = useState<string | null>(null);
  const detail = recorded.data?.detail ?? null;
  const followLive = recorded.data !== null && (detail === null || !ENDED.has(detail.status));

  useEffect(() => {
    if (followLive && live.state.status === "idle") {
      setLiveEvents([]);
      void live.watch(id);
    }
  }, [followLive, id]); // `live` changes every render; following once per run is the point

  const events: WorkflowEvent[] =
    followLive || liveEvents.length > 0
      ? liveEvents
      : (recorded.data?.timeline ?? []).map((entry) => entry.payload as unknown as WorkflowEvent);
  const state = followLive || liveEvents.length > 0 ? live.state : foldEvents(events);
  const workflowId = detail?.workflow_id ?? (events[0]?.data as { workflow_id?: string } | undefined)?.workflow_id;
  const version = detail?.workflow_version ?? undefined;
  const workflow = useLoad(
    () => (workflowId ? api.workflows.get(workflowId, version ?? undefined) : Promise.resolve(null)),
    [api, workflowId, version],
  );

  if (recorded.error) return <p className="error">{recorded.error.message}</p>;
  if (!recorded.data) return <p className="muted">Loading…</p>;
  const status = state.status === "idle" ? (detail?.status ?? "pending") : state.status;
  const record = selected ? detail?.nodes.filter((n) => n.node_id === selected).at(-1) : undefined;
  const nodeState = selected ? state.nodes[selected] : undefined;
  const startedAt = Number((events[0]?.data as { created_at?: number } | undefined)?.created_at ?? 0);

  return (
    <section className="run-page">
      <div className="toolbar">
        <h2>
          Run <code>{id}</code>
        </h2>
        <span className={`badge badge-${status}`} data-testid="run-status">
          {status}
        </span>
        {workflow.data && <a href={href("workflows", workflow.data.id)}>{workflow.data.name}</a>}
        {live.running && (
          <button type="button" onClick={() => void live.stop()} data-testid="stop-button">
            Stop
          </button>
        )}
      </div>
      {detail && (
        <dl className="facts">
          <dt>Started</dt>
          <dd>{when(detail.created_at)}</dd>
          <dt>Duration</dt>
          <dd>{duration(detail.elapsed_ms)}</dd>
          <dt>Steps</dt>
          <dd>{detail.total_steps ?? "–"}</dd>
          <dt>Version</dt>
          <dd>{detail.workflow_version ?? "–"}</dd>
          {detail.error && (
            <>
              <dt>Error</dt>
              <dd className="error">{detail.error}</dd>
            </>
          )}
        </dl>
      )}
      <div className="split">
        <div className="main">
          {workflow.data && <Dag definition={workflow.data.definition} nodes={state.nodes} selected={selected} onSelect={setSelected} />}
          {selected && (nodeState || record) && (
            <NodeDetail
              title={nodeState?.title ?? record?.title ?? selected}
              status={record?.status ?? nodeState?.status ?? "pending"}
              elapsedMs={record?.elapsed_ms ?? (nodeState?.elapsedTime != null ? nodeState.elapsedTime * 1000 : null)}
              inputs={record?.inputs ?? nodeState?.inputs}
              outputs={record?.outputs ?? nodeState?.outputs}
              error={record?.error ?? nodeState?.error ?? null}
              onClose={() => setSelected(null)}
            />
          )}
          <h3>Inputs and outputs</h3>
          <div className="columns">
            <Json value={detail?.inputs ?? (events[0]?.data as { inputs?: unknown } | undefined)?.inputs} />
            <Json value={detail?.outputs ?? state.result?.outputs} />
          </div>
        </div>
        <div className="side">
          <h3>Timeline</h3>
          <ol className="timeline" data-testid="timeline">
            {events.map((event, i) => {
              const data = event.data as { node_id?: string; created_at?: number; finished_at?: number };
              const at = data.finished_at ?? data.created_at;
              return (
                <li
                  key={event.seq ?? `at-${i}`}
                  className={`tl tl-${event.event}`}
                  data-testid="timeline-entry"
                  onClick={() => data.node_id && setSelected(data.node_id)}
                >
                  <span className="tl-seq">{event.seq}</span>
                  <span className="tl-time">{at && startedAt ? `+${duration((at - startedAt) * 1000)}` : ""}</span>
                  <span className="tl-event">{event.event}</span>
                  <span className="tl-what">{describe(event)}</span>
                </li>
              );
            })}
          </ol>
        </div>
      </div>
    </section>
  );
}
