/** The workflow as a graph that lights up as its run goes: status, timing and streamed text. */
import type { NodeState, WorkflowDefinition } from "@flowstream/client";
import { Background, Controls, type Edge, Handle, type Node, type NodeProps, Position, ReactFlow } from "@xyflow/react";
import { useMemo } from "react";
import { duration } from "../format";
import { layout } from "./layout";

type StepData = {
  title: string;
  type: string;
  state: NodeState | undefined;
  selected: boolean;
};

function Step({ data }: NodeProps<Node<StepData>>) {
  const status = data.state?.status ?? "pending";
  return (
    <div className={`step step-${status}${data.selected ? " step-selected" : ""}`} data-testid="dag-node" data-status={status}>
      <Handle type="target" position={Position.Left} />
      <div className="step-head">
        <span className="step-title">{data.title}</span>
        <span className={`badge badge-${status}`}>{status}</span>
      </div>
      <div className="step-meta">
        {data.type}
        {data.state?.elapsedTime != null && ` · ${duration(data.state.elapsedTime * 1000)}`}
        {data.state && data.state.attempts > 1 && ` · ${data.state.attempts} attempts`}
      </div>
      {data.state?.text && <div className="step-text">{data.state.text}</div>}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const nodeTypes = { step: Step };

export interface DagProps {
  definition: WorkflowDefinition;
  nodes: Record<string, NodeState>;
  selected?: string | null;
  onSelect?: (nodeId: string) => void;
}

export function Dag({ definition, nodes, selected, onSelect }: DagProps) {
  const positions = useMemo(() => layout(definition), [definition]);
  const flowNodes: Node<StepData>[] = definition.nodes.map((n, i) => ({
    id: n.id,
    type: "step",
    position: positions[i] ?? { x: 0, y: 0 },
    data: { title: n.name || n.id, type: n.type, state: nodes[n.id], selected: selected === n.id },
    draggable: false,
    connectable: false,
  }));
  const edges: Edge[] = definition.connections.map((c, i) => {
    const reached = nodes[c.from] && ["succeeded", "exception"].includes(nodes[c.from]?.status ?? "") && nodes[c.to];
    const label = c.type && c.type !== "SEQUENCE" ? c.type.replace("CONDITIONAL_", "").toLowerCase() : undefined;
    return {
      id: `${c.from}-${c.to}-${i}`,
      source: c.from,
      target: c.to,
      animated: nodes[c.to]?.status === "running",
      className: reached ? "edge-taken" : "",
      ...(label ? { label } : {}),
    };
  });
  return (
    <div className="dag" data-testid="dag">
      <ReactFlow
        nodes={flowNodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.15 }}
        nodesConnectable={false}
        onNodeClick={(_event, node) => onSelect?.(node.id)}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
