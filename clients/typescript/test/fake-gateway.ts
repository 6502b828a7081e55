/**
 * A scripted HTTP server for unit tests: each route answers with a handler written in the test,
 * so the client's transport, SSE parsing and resume run for real over loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void | Promise<void>;

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface FakeGateway {
  baseUrl: string;
  requests: Recorded[];
  /** Handlers per `METHOD /path`; a list is used one entry per call, the last one repeating. */
  routes: Map<string, Handler | Handler[]>;
  close(): Promise<void>;
}

export async function startFakeGateway(): Promise<FakeGateway> {
  const requests: Recorded[] = [];
  const routes = new Map<string, Handler | Handler[]>();
  const calls = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      const key = `${request.method} ${request.url}`;
      requests.push({ method: request.method ?? "", path: request.url ?? "", headers: request.headers, body });
      const route = routes.get(key);
      const count = calls.get(key) ?? 0;
      calls.set(key, count + 1);
      const handler = Array.isArray(route) ? route[Math.min(count, route.length - 1)] : route;
      if (!handler) {
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ code: "not_found", message: `no route ${key}`, status: 404 }));
        return;
      }
      void handler(request, response, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    routes,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const RUN_ID = "run-1";

export function event(seq: number, name: string, data: Record<string, unknown> = {}): Record<string, unknown> {
  return { event: name, workflow_run_id: RUN_ID, task_id: "task-1", data, seq };
}

/** `id: <cursor>\ndata: <json>\n\n`, the cursor being 100 + seq so it differs from seq. */
export function frame(payload: Record<string, unknown>): string {
  return `id: ${100 + (payload.seq as number)}\ndata: ${JSON.stringify(payload)}\n\n`;
}

export const GREET_EVENTS = [
  event(1, "workflow_started", { id: RUN_ID, workflow_id: "wf", workflow_version: 1, inputs: {}, created_at: 1 }),
  event(2, "node_started", { id: "n1", node_id: "greet", node_type: "TEMPLATE", title: "Greet", index: 1, predecessor_node_id: null, inputs: {}, created_at: 1 }),
  event(3, "text_chunk", { text: "Hello ", from_variable_selector: ["greet", "text"] }),
  event(4, "text_chunk", { text: "Ada!", from_variable_selector: ["greet", "text"] }),
  event(5, "node_finished", { id: "n1", node_id: "greet", node_type: "TEMPLATE", title: "Greet", index: 1, inputs: {}, outputs: { text: "Hello Ada!" }, status: "succeeded", error: null, elapsed_time: 0.002, created_at: 1, finished_at: 1 }),
  event(6, "workflow_finished", { id: RUN_ID, workflow_id: "wf", status: "succeeded", outputs: { answer: "Hello Ada!" }, error: null, elapsed_time: 0.01, total_tokens: 0, total_steps: 3, created_at: 1, finished_at: 1 }),
];

export function sseHead(response: ServerResponse): void {
  response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
}

/** Answers with `frames` written one byte at a time, then `[DONE]`. */
export function byteByByte(frames: string[]): Handler {
  return async (_request, response) => {
    sseHead(response);
    const bytes = Buffer.from(frames.join("") + "data: [DONE]\n\n");
    for (const byte of bytes) {
      response.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    response.end();
  };
}
