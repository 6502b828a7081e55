// Runs a workflow through the built package, as an application would, and prints each event as a
// JSON line, then one line {"done": true, "errors": [...]}. Used by tests/e2e/test_typescript_client.py.
//   FLOWSTREAM_URL=… FLOWSTREAM_TOKEN=… node stream-run.mjs <workflow id> '{"name": "Ada"}'
import { createWorkflowAPI } from "../dist/index.js";

const [workflowId, inputs = "{}"] = process.argv.slice(2);
const api = createWorkflowAPI({
  baseUrl: process.env.FLOWSTREAM_URL,
  token: process.env.FLOWSTREAM_TOKEN,
  resume: { initialDelayMs: 100 },
});
const errors = [];
await api.executeWorkflowStream(
  workflowId,
  JSON.parse(inputs),
  (event) => console.log(JSON.stringify(event)),
  (error) => errors.push({ code: error.code, status: error.status, message: error.message }),
);
console.log(JSON.stringify({ done: true, errors }));
process.exitCode = errors.length ? 1 : 0;
