/**
 * An edge's condition or mapper: a JSONata expression, evaluated in the browser on a sample
 * message body as it is typed, so its effect is seen before the flow runs.
 */
import jsonata from 'jsonata';
import { useEffect, useId, useState } from 'react';

export type JsonataOutcome = { ok: true; value: unknown } | { ok: false; error: string };

/** Evaluates `expression` over `sample` (JSON text); a bad sample or expression says why. */
export async function evaluateJsonata(expression: string, sample: string): Promise<JsonataOutcome> {
  let input: unknown;
  try {
    input = sample.trim() ? JSON.parse(sample) : null;
  } catch (err) {
    return { ok: false, error: `sample message: ${(err as Error).message}` };
  }
  try {
    const value: unknown = await jsonata(expression).evaluate(input);
    return { ok: true, value };
  } catch (err) {
    const e = err as { message?: string; position?: number };
    return { ok: false, error: `${e.message ?? String(err)}${e.position !== undefined ? ` (at ${e.position})` : ''}` };
  }
}

export interface JsonataFieldProps {
  label: string;
  hint: string;
  value: string;
  onChange: (value: string) => void;
  sample: string;
  /** How to read the result: a condition is taken or not; a mapper gives the next body. */
  kind: 'condition' | 'mapper';
  readonly?: boolean;
}

export function JsonataField({ label, hint, value, onChange, sample, kind, readonly }: JsonataFieldProps) {
  const id = useId();
  const [outcome, setOutcome] = useState<JsonataOutcome | undefined>();
  useEffect(() => {
    if (!value.trim()) return setOutcome(undefined);
    let current = true;
    void evaluateJsonata(value, sample).then((o) => current && setOutcome(o));
    return () => {
      current = false;
    };
  }, [value, sample]);

  let result = '';
  if (outcome?.ok) {
    result = kind === 'condition' ? (outcome.value ? 'true: the edge is taken' : 'false: the edge is not taken') : JSON.stringify(outcome.value ?? null, null, 2);
  }
  return (
    <div className="jsonata">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} rows={3} value={value} onChange={(e) => onChange(e.target.value)} aria-describedby={`${id}-hint ${id}-result`} readOnly={readonly} spellCheck={false} />
      <p id={`${id}-hint`} className="muted">
        {hint}
      </p>
      <output id={`${id}-result`} htmlFor={id} aria-live="polite" className={outcome && !outcome.ok ? 'error' : 'result'}>
        {outcome === undefined ? 'Empty: ' + (kind === 'condition' ? 'always taken.' : 'the body passes unchanged.') : outcome.ok ? `On the sample: ${result}` : outcome.error}
      </output>
    </div>
  );
}
