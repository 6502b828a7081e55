import type { WorkflowAPI } from "@flowstream/client";
import { useMemo, useState } from "react";
import { Login } from "./pages/Login";
import { RunPage } from "./pages/RunPage";
import { Runs } from "./pages/Runs";
import { Stats } from "./pages/Stats";
import { WorkflowPage } from "./pages/WorkflowPage";
import { Workflows } from "./pages/Workflows";
import { useRoute } from "./route";
import { clearToken, createApi, isUnauthorized, loadToken, saveToken } from "./session";

function Page({ api }: { api: WorkflowAPI }) {
  const route = useRoute();
  switch (route.page) {
    case "workflow":
      return <WorkflowPage key={route.id} api={api} id={route.id} />;
    case "stats":
      return <Stats key={route.id} api={api} id={route.id} />;
    case "runs":
      return <Runs api={api} params={route.params} />;
    case "run":
      return <RunPage key={route.id} api={api} id={route.id} />;
    default:
      return <Workflows api={api} />;
  }
}

export function App() {
  const [signedIn, setSignedIn] = useState(() => loadToken() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const api = useMemo(() => {
    const inner = createApi();
    // A token that stops working (expired, revoked) sends the user back to sign in.
    const guard = <T,>(call: Promise<T>): Promise<T> =>
      call.catch((error: unknown) => {
        if (isUnauthorized(error)) {
          clearToken();
          setNotice("The token was refused (expired or invalid): paste another one.");
          setSignedIn(false);
        }
        throw error;
      });
    return {
      ...inner,
      workflows: {
        list: (f) => guard(inner.workflows.list(f)),
        get: (id, v) => guard(inner.workflows.get(id, v)),
        stats: (id) => guard(inner.workflows.stats(id)),
      },
      runs: {
        list: (f) => guard(inner.runs.list(f)),
        get: (id) => guard(inner.runs.get(id)),
        timeline: (id) => guard(inner.runs.timeline(id)),
      },
    } satisfies WorkflowAPI;
  }, []);

  if (!signedIn) {
    return (
      <Login
        notice={notice}
        onToken={(token) => {
          saveToken(token);
          setNotice(null);
          setSignedIn(true);
        }}
      />
    );
  }
  return (
    <div className="app">
      <header className="top">
        <a href="#/" className="brand">
          flowstream
        </a>
        <nav>
          <a href="#/">Workflows</a>
          <a href="#/runs">Runs</a>
          <a href="/docs">API</a>
        </nav>
        <button
          type="button"
          className="link"
          onClick={() => {
            clearToken();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Page api={api} />
      </main>
    </div>
  );
}
