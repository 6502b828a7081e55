/** The signed-in token, kept in this browser only; the API is same-origin, so no base URL. */
import { createWorkflowAPI, FlowstreamError, type WorkflowAPI } from "@flowstream/client";

const TOKEN_KEY = "flowstream.token";

export function loadToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  localStorage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken(): void {
  localStorage.removeItem(TOKEN_KEY);
}

export function createApi(): WorkflowAPI {
  return createWorkflowAPI({ baseUrl: "", token: loadToken });
}

export function isUnauthorized(error: unknown): boolean {
  return error instanceof FlowstreamError && error.status === 401;
}
