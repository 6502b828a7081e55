import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createWorkflowAPI, FlowstreamError, type WorkflowEvent } from "../src/index.js";
import {
  byteByByte,
  event,
  type FakeGateway,
  frame,
  GREET_EVENTS,
  RUN_ID,
  sseHead,
  startFakeGateway,
} from "./fake-gateway.js";

const EXECUTE = "POST /api/workflow/wf/execute";
const ATTACH = `GET /api/executions/${RUN_ID}/events`;
const CANCEL = `POST /api/executions/${RUN_ID}/cancel`;

let gateway: FakeGateway;

beforeEach(async () => {
  gateway = await startFakeGateway();
});
afterEach(async () => {
  await gateway.close();
});

function client(resume: { initialDelayMs?: number; maxAttempts?: number } = {}) {
  return createWorkflowAPI({
    baseUrl: gateway.baseUrl,
    token: "secret-token",
    resume: { initialDelayMs: 5, ...resume },
  });
}

async function runToEnd(api = client()): Promise<{ events: WorkflowEvent[]; errors: FlowstreamError[] }> {
  const events: WorkflowEvent[] = [];
  const errors: FlowstreamError[] = [];
  await api.executeWorkflowStream("wf", { name: "Ada" }, (e) => events.push(e), (e) => errors.push(e));
  return { events, errors };
}

const names = (events: WorkflowEvent[]) => events.map((e) => e.event);
const seqs = (events: WorkflowEvent[]) => events.map((e) => e.seq);

describe("executeWorkflowStream", () => {
  it("parses frames split anywhere, even inside a UTF-8 character, and stops at [DONE]", async () => {
    const unicode = event(3, "text_chunk", { text: "Grüße 👋", from_variable_selector: ["greet", "text"] });
    gateway.routes.set(EXECUTE, byteByByte([GREET_EVENTS[0]!, GREET_EVENTS[1]!, unicode, ...GREET_EVENTS.slice(3)].map(frame)));
    const { events, errors } = await runToEnd();
    expect(errors).toEqual([]);
    expect(names(events)).toEqual(["workflow_started", "node_started", "text_chunk", "text_chunk", "node_finished", "workflow_finished"]);
    expect(events[2]?.data).toMatchObject({ text: "Grüße 👋" });
    const request = gateway.requests[0]!;
    expect(request.headers.authorization).toBe("Bearer secret-token");
    expect(JSON.parse(request.body)).toEqual({ inputs: { name: "Ada" }, response_mode: "streaming", on_disconnect: "continue" });
  });

  it("resumes a dropped stream after the last whole frame, without losing or repeating events", async () => {
    gateway.routes.set(EXECUTE, (_request, response) => {
      sseHead(response);
      // Two whole frames, then half of the third: the connection dies mid-frame.
      response.write(frame(GREET_EVENTS[0]!) + frame(GREET_EVENTS[1]!) + frame(GREET_EVENTS[2]!).slice(0, 20));
      setTimeout(() => response.socket?.destroy(), 20);
    });
    gateway.routes.set(ATTACH, (request, response) => {
      // A replay that repeats one event already delivered: seq deduplication drops it.
      sseHead(response);
      response.end([GREET_EVENTS[1], ...GREET_EVENTS.slice(2)].map((e) => frame(e!)).join("") + "data: [DONE]\n\n");
    });
    const { events, errors } = await runToEnd();
    expect(errors).toEqual([]);
    expect(seqs(events)).toEqual([1, 2, 3, 4, 5, 6]);
    const attach = gateway.requests.find((r) => r.method === "GET")!;
    expect(attach.headers["last-event-id"]).toBe("102");
    expect(attach.headers.authorization).toBe("Bearer secret-token");
  });

  it("follows the gateway's resume frame to its URL and cursor, after its retry delay", async () => {
    const resumeUrl = `/api/executions/${RUN_ID}/events`;
    gateway.routes.set(EXECUTE, (_request, response) => {
      sseHead(response);
      const hint = {
        event: "resume",
        workflow_run_id: RUN_ID,
        task_id: "task-1",
        data: { url: resumeUrl, last_event_id: "opaque-cursor-7" },
      };
      response.end(frame(GREET_EVENTS[0]!) + `retry: 30\nevent: resume\ndata: ${JSON.stringify(hint)}\n\n`);
    });
    let resumedAt = 0;
    gateway.routes.set(ATTACH, (_request, response) => {
      resumedAt = Date.now();
      sseHead(response);
      response.end(GREET_EVENTS.slice(1).map((e) => frame(e!)).join("") + "data: [DONE]\n\n");
    });
    const started = Date.now();
    const { events, errors } = await runToEnd(client({ initialDelayMs: 5000 }));
    expect(errors).toEqual([]);
    expect(seqs(events)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(names(events)).not.toContain("resume");
    const attach = gateway.requests.find((r) => r.method === "GET")!;
    expect(attach.headers["last-event-id"]).toBe("opaque-cursor-7");
    expect(resumedAt - started).toBeGreaterThanOrEqual(25);
    expect(resumedAt - started).toBeLessThan(2000);
  });

  it("keeps resuming a stream that ends cleanly without the run's end", async () => {
    gateway.routes.set(EXECUTE, (_request, response) => {
      sseHead(response);
      response.end(frame(GREET_EVENTS[0]!));
    });
    gateway.routes.set(ATTACH, [
      (_request, response) => {
        sseHead(response);
        response.end(frame(GREET_EVENTS[1]!) + frame(GREET_EVENTS[2]!));
      },
      (_request, response) => {
        response.writeHead(503, { "content-type": "application/json" });
        response.end(JSON.stringify({ code: "service_unavailable", message: "restarting", status: 503 }));
      },
      (_request, response) => {
        sseHead(response);
        response.end(GREET_EVENTS.slice(3).map((e) => frame(e!)).join("") + "data: [DONE]\n\n");
      },
    ]);
    const { events, errors } = await runToEnd();
    expect(errors).toEqual([]);
    expect(seqs(events)).toEqual([1, 2, 3, 4, 5, 6]);
    const cursors = gateway.requests.filter((r) => r.method === "GET").map((r) => r.headers["last-event-id"]);
    expect(cursors).toEqual(["101", "103", "103"]);
  });

  it("gives up after the configured attempts and reports why", async () => {
    gateway.routes.set(EXECUTE, (_request, response) => {
      sseHead(response);
      response.end(frame(GREET_EVENTS[0]!));
    });
    gateway.routes.set(ATTACH, (_request, response) => {
      response.writeHead(503, { "content-type": "application/json" });
      response.end(JSON.stringify({ code: "service_unavailable", message: "down", status: 503 }));
    });
    const { events, errors } = await runToEnd(client({ maxAttempts: 3 }));
    expect(seqs(events)).toEqual([1]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe("stream_dropped");
    expect(gateway.requests.filter((r) => r.method === "GET")).toHaveLength(3);
  });

  it("reports the API's error body and does not retry a refused run", async () => {
    gateway.routes.set(EXECUTE, (_request, response) => {
      response.writeHead(400, { "content-type": "application/json" });
      response.end(JSON.stringify({ code: "invalid_param", message: "name is required in input form", status: 400 }));
    });
    const { events, errors } = await runToEnd();
    expect(events).toEqual([]);
    expect(errors[0]).toBeInstanceOf(FlowstreamError);
    expect(errors[0]).toMatchObject({ code: "invalid_param", status: 400, message: "name is required in input form" });
    expect(gateway.requests).toHaveLength(1);
  });

  it("stops the run when the caller aborts, even before the first event arrived", async () => {
    let release: () => void = () => undefined;
    gateway.routes.set(EXECUTE, (_request, response) => {
      sseHead(response);
      response.flushHeaders();
      release = () => response.write(frame(GREET_EVENTS[0]!));
    });
    gateway.routes.set(CANCEL, (_request, response) => {
      response.writeHead(202, { "content-type": "application/json" });
      response.end(JSON.stringify({ id: RUN_ID, result: "cancelling" }));
    });
    const controller = new AbortController();
    const errors: FlowstreamError[] = [];
    const done = client().executeWorkflowStream("wf", {}, () => undefined, (e) => errors.push(e), {
      signal: controller.signal,
    });
    await waitFor(() => gateway.requests.length === 1);
    controller.abort();
    release();
    await done;
    expect(errors).toEqual([]);
    expect(gateway.requests.map((r) => `${r.method} ${r.path}`)).toEqual([EXECUTE, CANCEL]);
  });
});

describe("attach and the other calls", () => {
  it("attach sends Last-Event-ID and never cancels the run it watches", async () => {
    gateway.routes.set(ATTACH, (_request, response) => {
      sseHead(response);
      response.write(frame(GREET_EVENTS[4]!));
    });
    const controller = new AbortController();
    const seen: WorkflowEvent[] = [];
    await expect(
      (async () => {
        for await (const e of client().attach(RUN_ID, { lastEventId: "103", signal: controller.signal })) {
          seen.push(e);
          controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(seqs(seen)).toEqual([5]);
    expect(gateway.requests.map((r) => r.headers["last-event-id"])).toEqual(["103"]);
    expect(gateway.requests.some((r) => r.path.endsWith("/cancel"))).toBe(false);
  });

  it("execute waits for the blocking answer", async () => {
    gateway.routes.set(EXECUTE, (_request, response, body) => {
      expect(JSON.parse(body)).toMatchObject({ response_mode: "blocking" });
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ task_id: "task-1", workflow_run_id: RUN_ID, data: { status: "succeeded", outputs: { answer: "Hello Ada!" } } }));
    });
    const result = await client().execute("wf", { name: "Ada" });
    expect(result.data.outputs).toEqual({ answer: "Hello Ada!" });
  });

  it("cancel, pause and resume post to the run's control routes", async () => {
    for (const action of ["cancel", "pause", "resume"]) {
      gateway.routes.set(`POST /api/executions/${RUN_ID}/${action}`, (_request, response) => {
        response.writeHead(202, { "content-type": "application/json" });
        response.end("{}");
      });
    }
    const api = client();
    await api.cancel(RUN_ID);
    await api.pause(RUN_ID);
    await api.resume(RUN_ID);
    expect(gateway.requests.map((r) => r.path)).toEqual(["cancel", "pause", "resume"].map((a) => `/api/executions/${RUN_ID}/${a}`));
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}
