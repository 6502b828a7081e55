import type { WorkflowAPI } from "@flowstream/client";
import { useState } from "react";
import { when } from "../format";
import { href } from "../route";
import { useLoad } from "../useLoad";

export function Workflows({ api }: { api: WorkflowAPI }) {
  const [q, setQ] = useState("");
  const { data, error } = useLoad(() => api.workflows.list({ q, size: 100 }), [api, q]);
  return (
    <section>
      <div className="toolbar">
        <h2>Workflows</h2>
        <input type="search" placeholder="Search by name or description" value={q} onChange={(e) => setQ(e.target.value)} />
      </div>
      {error && <p className="error">{error.message}</p>}
      <table className="table" data-testid="workflow-list">
        <thead>
          <tr>
            <th>Name</th>
            <th>Description</th>
            <th>Tags</th>
            <th>Version</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data?.items.map((w) => (
            <tr key={w.id}>
              <td>
                <a href={href("workflows", w.id)} data-testid={`workflow-${w.name}`}>
                  {w.name}
                </a>
                {w.draft && <span className="badge">draft</span>}
              </td>
              <td>{w.description}</td>
              <td>{w.tags.join(", ")}</td>
              <td>{w.version}</td>
              <td>{when(w.updated_at)}</td>
              <td className="actions">
                <a href={href("workflows", w.id)}>Run</a> <a href={`#/runs?workflow_id=${encodeURIComponent(w.id)}`}>Runs</a>{" "}
                <a href={href("workflows", w.id, "stats")}>Statistics</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.items.length === 0 && <p className="muted">No workflows yet: create one with the API or the CLI.</p>}
    </section>
  );
}
