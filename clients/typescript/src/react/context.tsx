import { createContext, type ReactNode, useContext } from "react";
import type { WorkflowAPI } from "../api.js";

const ApiContext = createContext<WorkflowAPI | null>(null);

/** Makes one `WorkflowAPI` available to every flowstream component below it. */
export function FlowstreamProvider({ api, children }: { api: WorkflowAPI; children?: ReactNode }) {
  return <ApiContext.Provider value={api}>{children}</ApiContext.Provider>;
}

/** The API given as a prop, else the provider's; a clear error when there is neither. */
export function useWorkflowAPI(explicit?: WorkflowAPI): WorkflowAPI {
  const provided = useContext(ApiContext);
  const api = explicit ?? provided;
  if (!api) throw new Error("no WorkflowAPI: pass `api` or wrap the tree in <FlowstreamProvider>");
  return api;
}
