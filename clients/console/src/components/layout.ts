/**
 * Places a workflow's nodes in columns by their longest distance from START, so a run reads left
 * to right. Loop back edges (found by a depth-first walk) are left out of the ranking.
 */
import type { WorkflowDefinition } from "@flowstream/client";

export interface Placed {
  id: string;
  x: number;
  y: number;
}

const COLUMN = 240;
const ROW = 130;

export function layout(definition: WorkflowDefinition): Placed[] {
  const ids = definition.nodes.map((n) => n.id);
  const outgoing = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const c of definition.connections) outgoing.get(c.from)?.push(c.to);

  const back = new Set<string>();
  const state = new Map<string, "open" | "done">();
  const visit = (id: string): void => {
    state.set(id, "open");
    for (const next of outgoing.get(id) ?? []) {
      if (state.get(next) === "open") back.add(`${id}>${next}`);
      else if (!state.has(next)) visit(next);
    }
    state.set(id, "done");
  };
  const start = definition.nodes.find((n) => n.type === "START")?.id;
  if (start) visit(start);
  for (const id of ids) if (!state.has(id)) visit(id);

  const rank = new Map<string, number>(ids.map((id) => [id, 0]));
  const incoming = new Map<string, number>(ids.map((id) => [id, 0]));
  const forward = definition.connections.filter((c) => !back.has(`${c.from}>${c.to}`));
  for (const c of forward) incoming.set(c.to, (incoming.get(c.to) ?? 0) + 1);
  const ready = ids.filter((id) => incoming.get(id) === 0);
  while (ready.length) {
    const id = ready.shift() as string;
    for (const c of forward.filter((f) => f.from === id)) {
      rank.set(c.to, Math.max(rank.get(c.to) ?? 0, (rank.get(id) ?? 0) + 1));
      incoming.set(c.to, (incoming.get(c.to) ?? 1) - 1);
      if (incoming.get(c.to) === 0) ready.push(c.to);
    }
  }

  const columns = new Map<number, string[]>();
  for (const id of ids) {
    const column = rank.get(id) ?? 0;
    columns.set(column, [...(columns.get(column) ?? []), id]);
  }
  const tallest = Math.max(...[...columns.values()].map((c) => c.length));
  return ids.map((id) => {
    const column = rank.get(id) ?? 0;
    const members = columns.get(column) ?? [id];
    const row = members.indexOf(id);
    const offset = ((tallest - members.length) * ROW) / 2;
    return { id, x: column * COLUMN, y: offset + row * ROW };
  });
}
