import { describe, expect, it } from "vitest";
import { applyEvent, foldEvents, initialRunState, type WorkflowEvent } from "../src/index.js";
import { event, GREET_EVENTS } from "./fake-gateway.js";

const greet = GREET_EVENTS as unknown as WorkflowEvent[];

describe("run state", () => {
  it("folds a run into node statuses, timings and streamed text", () => {
    const state = foldEvents(greet);
    expect(state.status).toBe("succeeded");
    expect(state.text).toBe("Hello Ada!");
    expect(state.order).toEqual(["greet"]);
    expect(state.nodes.greet).toMatchObject({ status: "succeeded", text: "Hello Ada!", elapsedTime: 0.002, title: "Greet" });
    expect(state.percent).toBe(100);
  });

  it("ignores an event it has already applied", () => {
    const once = foldEvents(greet.slice(0, 4));
    expect(applyEvent(once, greet[3]!)).toBe(once);
    expect(once.text).toBe("Hello Ada!");
  });

  it("tracks pause, resume and progress", () => {
    const steps = [
      greet[0]!,
      event(2, "workflow_progress", { completed_steps: 1, total_steps: 4, percent: 25 }),
      event(3, "workflow_paused", { id: "run-1", status: "paused", created_at: 1 }),
    ] as unknown as WorkflowEvent[];
    const paused = foldEvents(steps);
    expect(paused).toMatchObject({ status: "paused", percent: 25 });
    const resumed = applyEvent(paused, event(4, "workflow_resumed", { id: "run-1", status: "running", created_at: 2 }) as unknown as WorkflowEvent);
    expect(resumed.status).toBe("running");
    expect(initialRunState.status).toBe("idle");
  });
});
