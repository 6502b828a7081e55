// Dify's published Node SDK (npm dify-client, pinned) driving flowstream's /v1, as a Dify user's
// app would: every assertion is something Dify's API documentation promises. Started by
// tests/e2e/test_dify_sdk_node.py, which runs the stack and hands over the apps in the environment.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CompletionClient, DifyClient } from "dify-client";
import { z } from "zod";

const baseUrl = `${process.env.FLOWSTREAM_URL}/v1`;
const keys = {
  grade: process.env.DIFY_GRADE_KEY, // START(score: number, verified: boolean) → CONDITION…
  slow: process.env.DIFY_SLOW_KEY, // START → DELAY 60 s → TEMPLATE → END
  short: process.env.DIFY_SHORT_KEY, // START → DELAY 0.5 s → TEMPLATE → END
};
const finishedRun = JSON.parse(process.env.DIFY_FINISHED_RUN); // a grade run, in history already

// What a typed Dify client validates every event against.
const StreamEvent = z.looseObject({
  event: z.string(),
  workflow_run_id: z.uuid(),
  task_id: z.uuid(),
  data: z.looseObject({}),
});
const DIFY_NODE_TYPES = new Set(["start", "end", "llm", "http-request", "if-else",
  "template-transform", "loop", "iteration", "code", "delay", "parallel"]);

// Dify's SSE format: `data: {json}` blocks separated by a blank line, `event: ping` keep-alives.
async function* events(stream) {
  let buffer = "";
  for await (const chunk of stream) {
    buffer += chunk.toString("utf8");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) yield JSON.parse(line.slice("data: ".length));
      }
    }
  }
}

// Reads a stream up to the first event `wanted` accepts, leaving the rest to read on.
async function readUntil(stream, wanted) {
  for (;;) {
    const { value, done } = await stream.next();
    if (done) throw new Error("the stream ended first");
    if (wanted(StreamEvent.parse(value))) return value;
  }
}

async function readAll(stream) {
  const all = [];
  for await (const event of stream) all.push(StreamEvent.parse(event));
  return all;
}

test("parameters have every key, switched-off features included", async () => {
  const client = new DifyClient(keys.grade, baseUrl);
  const { data: params } = await client.getApplicationParameters("node-user");
  assert.equal(params.file_upload.image.enabled, false);
  for (const feature of ["speech_to_text", "text_to_speech", "retriever_resource",
    "annotation_reply", "more_like_this", "suggested_questions_after_answer"]) {
    assert.equal(params[feature].enabled, false, feature);
  }
  assert.equal(typeof params.system_parameters.file_size_limit, "number");
  assert.deepEqual(params.user_input_form.map((field) => Object.keys(field)[0]),
    ["number", "checkbox"]);
  assert.equal(params.user_input_form[1].checkbox.variable, "verified");
});

test("a blocking run takes form strings and answers Dify's body with UUID ids", async () => {
  const client = new CompletionClient(keys.grade, baseUrl);
  const { data: body } = await client.runWorkflow({ score: "72", verified: "on" }, "node-user");
  assert.deepEqual(Object.keys(body), ["task_id", "workflow_run_id", "data"]);
  z.uuid().parse(body.task_id);
  z.uuid().parse(body.workflow_run_id);
  assert.notEqual(body.task_id, body.workflow_run_id);
  assert.equal(body.data.status, "succeeded");
  assert.deepEqual(body.data.outputs, { result: "Passed with 72" });
  assert.ok(Number.isInteger(body.data.finished_at));

  // The detail is there at once, and its inputs are a JSON string.
  const detailPath = `/workflows/run/${body.workflow_run_id}`;
  const { data: detail } = await client.sendRequest("GET", detailPath);
  assert.equal(detail.status, "succeeded");
  const inputs = JSON.parse(detail.inputs);
  assert.equal(inputs.score, 72);
  assert.equal(inputs.verified, true);
});

test("a streaming run speaks Dify's events, node types and ids", async () => {
  const client = new CompletionClient(keys.grade, baseUrl);
  const response = await client.runWorkflow({ score: 40, verified: true }, "node-user", true);
  assert.match(response.headers["content-type"], /^text\/event-stream/);
  const seen = await readAll(events(response.data));
  assert.equal(seen[0].event, "workflow_started");
  assert.equal(seen[0].data.inputs["sys.user_id"], "node-user");
  const types = seen.filter((e) => e.event === "node_started").map((e) => e.data.node_type);
  assert.deepEqual(types, ["start", "if-else", "template-transform", "end"]);
  assert.ok(types.every((t) => DIFY_NODE_TYPES.has(t)));
  const finished = seen.filter((e) => e.event === "node_finished");
  assert.ok(finished.every((e) => Array.isArray(e.data.files)));
  assert.ok(finished.every((e) => e.data.outputs_truncated === false));
  const final = seen.at(-1);
  assert.equal(final.event, "workflow_finished");
  assert.equal(final.data.status, "succeeded");
  assert.deepEqual(final.data.outputs, { result: "Not passed" });
  assert.deepEqual(final.data.created_by, { id: "node-user", user: "node-user" });
  assert.equal(final.data.exceptions_count, 0);
});

test("stop ends a streaming run stopped, and always answers success", async () => {
  const client = new CompletionClient(keys.slow, baseUrl);
  const response = await client.runWorkflow({}, "node-stopper", true);
  const stream = events(response.data);
  const delay = await readUntil(stream,
    (e) => e.event === "node_started" && e.data.node_type === "delay");
  const taskId = delay.task_id;
  const stop = (user) => client.sendRequest("POST", `/workflows/tasks/${taskId}/stop`, { user });
  assert.deepEqual((await stop("node-stopper")).data, { result: "success" });
  const rest = await readAll(stream);
  assert.equal(rest.at(-1).event, "workflow_finished");
  assert.equal(rest.at(-1).data.status, "stopped");
  assert.equal(rest.at(-1).data.error, "Stopped by user.");
  assert.deepEqual((await stop("node-stopper")).data, { result: "success" }); // finished: still
  const unknown = "7f1d2c3b-4a5e-4f60-8b7a-9c8d7e6f5a4b";
  const unknownStop = `/workflows/tasks/${unknown}/stop`;
  const { data } = await client.sendRequest("POST", unknownStop, { user: "x" });
  assert.deepEqual(data, { result: "success" });
  await assert.rejects(client.sendRequest("POST", unknownStop, {}),
    (error) => error.response.status === 400 && error.response.data.code === "invalid_param");
});

test("a dropped stream leaves the run going; re-attach follows it to its end", async () => {
  const client = new CompletionClient(keys.short, baseUrl);
  const response = await client.runWorkflow({}, "node-drop", true);
  const wait = await readUntil(events(response.data),
    (e) => e.event === "node_started" && e.data.node_id === "wait");
  const runId = wait.workflow_run_id;
  response.data.destroy(); // the connection drops mid-run

  const path = `/workflow/${runId}/events`;
  const again = await client.sendRequest("GET", path, null, { user: "node-drop" }, true);
  const followed = await readAll(events(again.data));
  assert.equal(followed.at(-1).event, "workflow_finished");
  assert.equal(followed.at(-1).data.status, "succeeded");

  const done = await client.sendRequest("GET", path, null, { user: "node-drop" }, true);
  assert.deepEqual((await readAll(events(done.data))).map((e) => e.event), ["workflow_finished"]);
  await assert.rejects(client.sendRequest("GET", path, null, { user: "someone-else" }),
    (error) => error.response.status === 404 && error.response.data.code === "not_found");
});

test("logs and info describe the app's runs, newest first", async () => {
  const client = new DifyClient(keys.grade, baseUrl);
  const { data: logs } = await client.sendRequest("GET", "/workflows/logs", null,
    { created_by_end_user_session_id: finishedRun.user, limit: 5 });
  assert.equal(logs.page, 1);
  assert.equal(typeof logs.has_more, "boolean");
  const entry = logs.data.find((e) => e.workflow_run.id === finishedRun.id);
  assert.ok(entry, "the finished run is listed");
  assert.equal(entry.created_by_end_user.session_id, finishedRun.user);
  assert.equal(entry.workflow_run.status, "succeeded");

  const { data: info } = await client.sendRequest("GET", "/info");
  assert.equal(info.mode, "workflow");
  assert.equal(typeof info.author_name, "string");
  assert.deepEqual((await client.sendRequest("GET", "/meta")).data, { tool_icons: {} });
  assert.equal((await client.sendRequest("GET", "/site")).data.title, info.name);
});
