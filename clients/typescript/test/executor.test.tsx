// @vitest-environment happy-dom
// @vitest-environment-options {"settings": {"fetch": {"disableSameOriginPolicy": true}}}
import { act } from "react";
import { createRoot } from "react-dom/client";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createWorkflowAPI, type WorkflowEvent, type WorkflowFinishedData } from "../src/index.js";
import { FlowstreamProvider, StreamWorkflowExecutor } from "../src/react/index.js";
import { type FakeGateway, frame, GREET_EVENTS, RUN_ID, sseHead, startFakeGateway } from "./fake-gateway.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let gateway: FakeGateway;
let container: HTMLElement;

beforeEach(async () => {
  gateway = await startFakeGateway();
  container = document.createElement("div");
  document.body.appendChild(container);
});
afterEach(async () => {
  container.remove();
  await gateway.close();
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) {
    await act(() => new Promise((resolve) => setTimeout(resolve, 5)));
  }
  expect(condition()).toBe(true);
}

it("StreamWorkflowExecutor runs the workflow, shows the streamed text and reports progress and completion", async () => {
  gateway.routes.set("POST /api/workflow/wf/execute", (_request, response) => {
    sseHead(response);
    response.end(GREET_EVENTS.map((e) => frame(e)).join("") + "data: [DONE]\n\n");
  });
  const api = createWorkflowAPI({ baseUrl: gateway.baseUrl, token: "t" });
  const progress: WorkflowEvent[] = [];
  const completed: WorkflowFinishedData[] = [];
  const root = createRoot(container);
  await act(async () =>
    root.render(
      <FlowstreamProvider api={api}>
        <StreamWorkflowExecutor
          workflowId="wf"
          inputs={{ name: "Ada" }}
          onProgress={(e) => progress.push(e)}
          onComplete={(data) => completed.push(data)}
        />
      </FlowstreamProvider>,
    ),
  );
  const button = container.querySelector("button")!;
  expect(button.textContent).toBe("Execute");
  await act(async () => button.click());
  await until(() => completed.length === 1);
  expect(container.querySelector(".flowstream-text")?.textContent).toBe("Hello Ada!");
  expect(container.querySelector("[role=status]")?.textContent).toBe("succeeded");
  expect(progress.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(completed[0]).toMatchObject({ status: "succeeded", outputs: { answer: "Hello Ada!" } });
  expect(container.querySelector("button")?.textContent).toBe("Execute");
  await act(async () => root.unmount());
});

it("unmounting the executor while its run goes on stops the run", async () => {
  gateway.routes.set("POST /api/workflow/wf/execute", (_request, response) => {
    sseHead(response);
    response.write(frame(GREET_EVENTS[0]!));
  });
  gateway.routes.set(`POST /api/executions/${RUN_ID}/cancel`, (_request, response) => {
    response.writeHead(202, { "content-type": "application/json" });
    response.end("{}");
  });
  const api = createWorkflowAPI({ baseUrl: gateway.baseUrl, token: "t" });
  const root = createRoot(container);
  await act(async () => root.render(<StreamWorkflowExecutor api={api} workflowId="wf" inputs={{}} />));
  await act(async () => container.querySelector("button")!.click());
  await until(() => container.querySelector("[role=status]")?.textContent === "running");
  expect(container.querySelector("button")?.textContent).toBe("Stop");
  await act(async () => root.unmount());
  await until(() => gateway.requests.some((r) => r.path === `/api/executions/${RUN_ID}/cancel`));
});
