/** A form built from the START node's declared inputs, typed as the gateway will check them. */
import type { InputDeclaration, WorkflowDefinition } from "@flowstream/client";
import { type FormEvent, useState } from "react";

export function startInputs(definition: WorkflowDefinition): InputDeclaration[] {
  const start = definition.nodes.find((n) => n.type === "START");
  const inputs = (start?.config as { inputs?: InputDeclaration[] } | undefined)?.inputs;
  return inputs ?? [];
}

function initial(decl: InputDeclaration): string | boolean {
  if (decl.type === "boolean") return decl.default === true;
  if (decl.default === undefined || decl.default === null) return "";
  return typeof decl.default === "string" ? decl.default : JSON.stringify(decl.default);
}

/** The typed value of one field, or an error naming it. */
function convert(decl: InputDeclaration, raw: string | boolean): unknown {
  if (decl.type === "boolean") return raw === true;
  const text = String(raw);
  if (text === "") return undefined;
  if (decl.type === "number" || decl.type === "integer") {
    const value = Number(text);
    if (Number.isNaN(value) || (decl.type === "integer" && !Number.isInteger(value))) {
      throw new Error(`${decl.name} must be ${decl.type === "integer" ? "an integer" : "a number"}`);
    }
    return value;
  }
  if (decl.type === "object" || decl.type === "array") {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${decl.name} must be JSON (${decl.type})`);
    }
  }
  return text;
}

export interface RunFormProps {
  inputs: InputDeclaration[];
  disabled: boolean;
  onRun: (values: Record<string, unknown>) => void;
}

export function RunForm({ inputs, disabled, onRun }: RunFormProps) {
  const [values, setValues] = useState<Record<string, string | boolean>>(() =>
    Object.fromEntries(inputs.map((d) => [d.name, initial(d)])),
  );
  const [problem, setProblem] = useState<string | null>(null);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    try {
      const typed: Record<string, unknown> = {};
      for (const decl of inputs) {
        const value = convert(decl, values[decl.name] ?? "");
        if (value !== undefined) typed[decl.name] = value;
      }
      setProblem(null);
      onRun(typed);
    } catch (error) {
      setProblem((error as Error).message);
    }
  };

  return (
    <form className="run-form" onSubmit={submit} data-testid="run-form">
      {inputs.map((decl) => {
        const id = `input-${decl.name}`;
        const value = values[decl.name];
        const set = (next: string | boolean) => setValues((current) => ({ ...current, [decl.name]: next }));
        let field;
        if (decl.type === "boolean") {
          field = <input id={id} name={decl.name} type="checkbox" checked={value === true} onChange={(e) => set(e.target.checked)} />;
        } else if (decl.type === "select" && decl.options) {
          field = (
            <select id={id} name={decl.name} value={String(value)} onChange={(e) => set(e.target.value)}>
              <option value="" />
              {decl.options.map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
          );
        } else if (decl.type === "paragraph" || decl.type === "object" || decl.type === "array") {
          field = <textarea id={id} name={decl.name} value={String(value)} onChange={(e) => set(e.target.value)} rows={3} />;
        } else {
          field = (
            <input
              id={id}
              name={decl.name}
              type={decl.type === "number" || decl.type === "integer" ? "number" : "text"}
              step={decl.type === "integer" ? 1 : "any"}
              value={String(value)}
              maxLength={decl.max_length ?? undefined}
              onChange={(e) => set(e.target.value)}
            />
          );
        }
        return (
          <label key={decl.name} htmlFor={id}>
            <span>
              {decl.name}
              {decl.required && <em title="required"> *</em>} <small>{decl.type}</small>
            </span>
            {field}
            {decl.description && <small>{decl.description}</small>}
          </label>
        );
      })}
      {problem && <p className="error">{problem}</p>}
      <button type="submit" disabled={disabled} data-testid="run-button">
        Run
      </button>
    </form>
  );
}
