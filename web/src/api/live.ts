/**
 * Server-sent events from the hub (`/api/v1/executions/live`, `/api/v1/flows/live`), read with
 * fetch so the request carries the bearer token in a header (an EventSource can send neither
 * headers nor anything but cookies). Reconnects after a drop; `onOpen` runs on each (re)connect,
 * so a page reads its data again and misses nothing that changed while it was away.
 */
import { createParser } from 'eventsource-parser';
import { authHeaders, reportUnauthorized } from './client';

export interface ExecutionChanged {
  id: string;
  flowId: string;
}

export interface FlowChanged {
  id: string;
  status: string;
}

const RECONNECT_MS = 3_000;

/** Watches `path` until the returned function is called. */
function watch(path: string, filter: Record<string, string | undefined>, onOpen: (() => void) | undefined, onEvent: (name: string, data: unknown) => void): () => void {
  const abort = new AbortController();
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v) params.set(k, v);
  const url = `${path}${params.size ? `?${params}` : ''}`;

  const connect = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      try {
        const res = await fetch(url, { headers: { accept: 'text/event-stream', ...authHeaders() }, signal: abort.signal });
        if (res.status === 401) return reportUnauthorized();
        if (res.ok && res.body) {
          const parser = createParser({
            onEvent(event) {
              if (event.event === 'ready') onOpen?.();
              else if (event.event) onEvent(event.event, JSON.parse(event.data) as unknown);
            },
          });
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(value);
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      // The stream ended (hub restarting, network): try again a little later.
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  };
  void connect();
  return () => abort.abort();
}

export function watchExecutions(opts: { flowId?: string | undefined; executionId?: string | undefined; onOpen?: () => void; onExecution: (e: ExecutionChanged) => void }): () => void {
  return watch('/api/v1/executions/live', { 'filter[flowId]': opts.flowId, 'filter[executionId]': opts.executionId }, opts.onOpen, (name, data) => {
    if (name === 'execution') opts.onExecution(data as ExecutionChanged);
  });
}

export function watchFlows(opts: { flowId?: string | undefined; onOpen?: () => void; onFlow: (f: FlowChanged) => void }): () => void {
  return watch('/api/v1/flows/live', { 'filter[flowId]': opts.flowId }, opts.onOpen, (name, data) => {
    if (name === 'flow') opts.onFlow(data as FlowChanged);
  });
}
