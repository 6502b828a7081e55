import { Json } from "../components/Json";
import { duration } from "../format";

export interface NodeDetailProps {
  title: string;
  status: string;
  elapsedMs: number | null;
  inputs: unknown;
  outputs: unknown;
  error: string | null;
  onClose: () => void;
}

export function NodeDetail({ title, status, elapsedMs, inputs, outputs, error, onClose }: NodeDetailProps) {
  return (
    <aside className="node-detail" data-testid="node-detail">
      <header>
        <h3>{title}</h3>
        <span className={`badge badge-${status}`}>{status}</span>
        <span className="muted">{duration(elapsedMs)}</span>
        <button type="button" className="link" onClick={onClose}>
          close
        </button>
      </header>
      {error && <p className="error">{error}</p>}
      <h4>Inputs</h4>
      <Json value={inputs} />
      <h4>Outputs</h4>
      <Json value={outputs} />
    </aside>
  );
}
