/** A workflow's statistics: success rate, durations, the slowest node and errors by type. */
import type { WorkflowAPI } from "@flowstream/client";
import { BarChart, HorizontalBars, Ring } from "../components/Charts";
import { duration, percent } from "../format";
import { href } from "../route";
import { useLoad } from "../useLoad";

export function Stats({ api, id }: { api: WorkflowAPI; id: string }) {
  const workflow = useLoad(() => api.workflows.get(id), [api, id]);
  const stats = useLoad(() => api.workflows.stats(id), [api, id]);
  const recent = useLoad(() => api.runs.list({ workflow_id: id, size: 50 }), [api, id]);
  const error = workflow.error ?? stats.error ?? recent.error;
  if (error) return <p className="error">{error.message}</p>;
  const s = stats.data;
  const slowest = s?.slowest_node as { node_id?: string; avg_ms?: number } | null | undefined;
  const durations = [...(recent.data?.items ?? [])]
    .filter((r) => r.elapsed_ms !== null)
    .reverse()
    .map((r) => ({
      label: r.id,
      value: r.elapsed_ms ?? 0,
      className: `bar bar-${r.status}`,
      title: `${r.status} · ${duration(r.elapsed_ms)}`,
    }));

  return (
    <section className="stats" data-testid="stats">
      <div className="toolbar">
        <h2>Statistics{workflow.data ? ` · ${workflow.data.name}` : ""}</h2>
        <a href={href("workflows", id)}>Run it</a>
      </div>
      {s && (
        <>
          <div className="cards">
            <div className="card">
              <Ring share={s.success_rate} label="success rate" />
              <span>success rate {percent(s.success_rate)}</span>
            </div>
            <div className="card">
              <strong data-testid="stats-total">{s.total}</strong>
              <span>runs ({s.finished} finished)</span>
            </div>
            <div className="card">
              <strong>{duration(s.avg_duration_ms)}</strong>
              <span>average duration</span>
            </div>
            <div className="card">
              <strong>{duration(s.p95_duration_ms)}</strong>
              <span>95th percentile</span>
            </div>
            <div className="card">
              <strong>{slowest?.node_id ?? "–"}</strong>
              <span>slowest node {slowest ? duration(slowest.avg_ms ?? null) : ""}</span>
            </div>
          </div>
          <div className="columns">
            <div>
              <h3>Duration of the last {durations.length} runs</h3>
              <BarChart bars={durations} unit=" ms" />
            </div>
            <div>
              <h3>Outcomes</h3>
              <HorizontalBars
                bars={[
                  { label: "succeeded", value: s.succeeded, className: "bar-succeeded" },
                  { label: "not succeeded", value: s.finished - s.succeeded, className: "bar-failed" },
                  { label: "unfinished", value: s.total - s.finished, className: "bar-running" },
                ]}
              />
              <h3>Errors by type</h3>
              <HorizontalBars
                bars={Object.entries(s.errors_by_type).map(([label, value]) => ({ label, value, className: "bar-failed" }))}
              />
            </div>
          </div>
        </>
      )}
    </section>
  );
}
