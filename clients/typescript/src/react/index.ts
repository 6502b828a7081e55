export { FlowstreamProvider, useWorkflowAPI } from "./context.js";
export { StreamWorkflowExecutor } from "./StreamWorkflowExecutor.js";
export type { StreamWorkflowExecutorProps } from "./StreamWorkflowExecutor.js";
export { useWorkflowRun } from "./useWorkflowRun.js";
export type { RunCallbacks, WorkflowRun } from "./useWorkflowRun.js";
