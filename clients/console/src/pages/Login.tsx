import { type FormEvent, useState } from "react";

export function Login({ onToken, notice }: { onToken: (token: string) => void; notice: string | null }) {
  const [token, setToken] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (token.trim()) onToken(token.trim());
  };
  return (
    <form className="login" onSubmit={submit}>
      <h1>flowstream</h1>
      <p>
        Paste a token: a user JWT, or the development token <code>make run</code> prints.
      </p>
      {notice && <p className="error">{notice}</p>}
      <textarea
        name="token"
        data-testid="token-input"
        value={token}
        onChange={(e) => setToken(e.target.value)}
        rows={4}
        placeholder="eyJhbGciOiJIUzI1NiIs…"
        autoFocus
      />
      <button type="submit" data-testid="sign-in">
        Sign in
      </button>
    </form>
  );
}
