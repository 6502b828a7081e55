export { createWorkflowAPI } from "./api.js";
export type {
  AttachOptions,
  ClientOptions,
  ErrorHandler,
  MessageHandler,
  StreamOptions,
  WorkflowAPI,
} from "./api.js";
export { FlowstreamError } from "./errors.js";
export * from "./events.js";
export type { TokenSource } from "./http.js";
export type * from "./resources.js";
export { applyEvent, foldEvents, initialRunState } from "./run-state.js";
export type { NodeState, RunState } from "./run-state.js";
export type { ResumeOptions } from "./run-stream.js";
