/** One place that turns a path and a body into an authenticated request and a typed answer. */
import { connectionError, errorFromResponse, isAbort } from "./errors.js";

export type TokenSource = string | (() => string | null | undefined);

export interface Transport {
  /** Absolute or same-origin URL of the gateway, without a trailing slash. */
  readonly baseUrl: string;
  url(path: string): string;
  /** Sends a request; non-2xx answers and connection failures reject with a FlowstreamError. */
  send(path: string, init: RequestInit & { json?: unknown }): Promise<Response>;
  json<T>(path: string, init?: RequestInit & { json?: unknown }): Promise<T>;
}

export function createTransport(
  baseUrl: string,
  token: TokenSource | undefined,
  fetchImpl: typeof fetch,
): Transport {
  const base = baseUrl.replace(/\/+$/, "");

  function headers(init: RequestInit & { json?: unknown }): Headers {
    const result = new Headers(init.headers);
    const current = typeof token === "function" ? token() : token;
    if (current) result.set("Authorization", `Bearer ${current}`);
    if (init.json !== undefined) result.set("Content-Type", "application/json");
    return result;
  }

  const transport: Transport = {
    baseUrl: base,
    url: (path) => `${base}${path}`,
    async send(path, init) {
      const { json, ...rest } = init;
      let response: Response;
      try {
        response = await fetchImpl(transport.url(path), {
          ...rest,
          headers: headers(init),
          ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
        });
      } catch (error) {
        if (isAbort(error)) throw error;
        throw connectionError(error);
      }
      if (!response.ok) throw await errorFromResponse(response);
      return response;
    },
    async json<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
      const response = await transport.send(path, init);
      if (response.status === 204) return undefined as T;
      return (await response.json()) as T;
    },
  };
  return transport;
}

/** `?a=1&b=x` from the defined values of a record, or "" when there are none. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
