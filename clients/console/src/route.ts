/** Hash routes (`#/runs/<id>`): the gateway serves one page at `/`, whatever the view. */
import { useEffect, useState } from "react";

export type Route =
  | { page: "workflows" }
  | { page: "workflow"; id: string }
  | { page: "stats"; id: string }
  | { page: "runs"; params: URLSearchParams }
  | { page: "run"; id: string };

export function parseRoute(hash: string): Route {
  const [path = "", search = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "workflows" && parts[1] && parts[2] === "stats") return { page: "stats", id: parts[1] };
  if (parts[0] === "workflows" && parts[1]) return { page: "workflow", id: parts[1] };
  if (parts[0] === "runs" && parts[1]) return { page: "run", id: parts[1] };
  if (parts[0] === "runs") return { page: "runs", params: new URLSearchParams(search) };
  return { page: "workflows" };
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
