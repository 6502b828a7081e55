/** The caller's runs, newest first, filtered by workflow, status and time; filters live in the URL. */
import type { RunFilters, RunStatus, WorkflowAPI } from "@flowstream/client";
import { duration, when } from "../format";
import { href } from "../route";
import { useLoad } from "../useLoad";

const STATUSES: RunStatus[] = ["pending", "running", "paused", "succeeded", "partial-succeeded", "failed", "stopped"];

function toSeconds(local: string | null): number | undefined {
  if (!local) return undefined;
  const ms = new Date(local).getTime();
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

function setParams(params: URLSearchParams, changes: Record<string, string>): void {
  const next = new URLSearchParams(params);
  for (const [key, value] of Object.entries(changes)) {
    if (value) next.set(key, value);
    else next.delete(key);
  }
  if (!("page" in changes)) next.delete("page");
  location.hash = `#/runs?${next.toString()}`;
}

export function Runs({ api, params }: { api: WorkflowAPI; params: URLSearchParams }) {
  const key = params.toString();
  const filters: RunFilters = {
    workflow_id: params.get("workflow_id") || undefined,
    status: (params.get("status") as RunStatus | null) || undefined,
    created_after: toSeconds(params.get("after")),
    created_before: toSeconds(params.get("before")),
    page: Number(params.get("page") ?? 1),
    size: 25,
  };
  const runs = useLoad(() => api.runs.list(filters), [api, key]);
  const workflows = useLoad(() => api.workflows.list({ size: 100 }), [api]);
  const names = new Map(workflows.data?.items.map((w) => [w.id, w.name]));
  const page = runs.data?.page ?? 1;

  return (
    <section>
      <div className="toolbar">
        <h2>Runs</h2>
        <button type="button" onClick={runs.reload}>
          Refresh
        </button>
      </div>
      <form className="filters" onSubmit={(e) => e.preventDefault()} data-testid="run-filters">
        <label>
          Workflow
          <select name="workflow_id" value={params.get("workflow_id") ?? ""} onChange={(e) => setParams(params, { workflow_id: e.target.value })}>
            <option value="">all</option>
            {workflows.data?.items.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status" value={params.get("status") ?? ""} onChange={(e) => setParams(params, { status: e.target.value })}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Created after
          <input type="datetime-local" value={params.get("after") ?? ""} onChange={(e) => setParams(params, { after: e.target.value })} />
        </label>
        <label>
          Created before
          <input type="datetime-local" value={params.get("before") ?? ""} onChange={(e) => setParams(params, { before: e.target.value })} />
        </label>
      </form>
      {runs.error && <p className="error">{runs.error.message}</p>}
      <table className="table" data-testid="run-list">
        <thead>
          <tr>
            <th>Run</th>
            <th>Workflow</th>
            <th>Status</th>
            <th>Created</th>
            <th>Duration</th>
            <th>Steps</th>
          </tr>
        </thead>
        <tbody>
          {runs.data?.items.map((run) => (
            <tr key={run.id} data-testid="run-row" data-status={run.status}>
              <td>
                <a href={href("runs", run.id)}>{run.execution_name ?? run.id.slice(0, 12)}</a>
              </td>
              <td>{names.get(run.workflow_id) ?? run.workflow_id}</td>
              <td>
                <span className={`badge badge-${run.status}`}>{run.status}</span>
              </td>
              <td>{when(run.created_at)}</td>
              <td>{duration(run.elapsed_ms)}</td>
              <td>{run.total_steps ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs.data && (
        <div className="pager">
          <button type="button" disabled={page <= 1} onClick={() => setParams(params, { page: String(page - 1) })}>
            Previous
          </button>
          <span>
            page {page} of {Math.max(runs.data.pages, 1)} · {runs.data.total} runs
          </span>
          <button type="button" disabled={page >= runs.data.pages} onClick={() => setParams(params, { page: String(page + 1) })}>
            Next
          </button>
        </div>
      )}
    </section>
  );
}
