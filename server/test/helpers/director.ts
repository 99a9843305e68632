/** GraphQL calls to the Director through the hub's HTTP surface (`app.inject`). */
import type { TestHub } from './hub.js';

export interface GqlResult {
  status: number;
  data: any;
  errors: Array<{ message: string; path?: Array<string | number>; extensions: { error_code: number; code: string } }> | undefined;
}

export async function gql(hub: TestHub, query: string, opts: { variables?: Record<string, unknown>; token?: string | null; headers?: Record<string, string> } = {}): Promise<GqlResult> {
  const res = await hub.api('POST', '/director/graphql', { query, variables: opts.variables }, opts.token, opts.headers);
  return { status: res.status, data: res.body?.data, errors: res.body?.errors };
}

/** The `result` of a query that must succeed. */
export async function ok(hub: TestHub, query: string, opts: Parameters<typeof gql>[2] = {}): Promise<any> {
  const r = await gql(hub, query, opts);
  if (r.errors?.length || r.status !== 200) throw new Error(`GraphQL failed (${r.status}): ${JSON.stringify(r.errors)}`);
  return r.data;
}

export async function registerApp(hub: TestHub, input: string, token?: string): Promise<{ id: string; [k: string]: any }> {
  return (await ok(hub, `mutation { result: registerApplication(in: ${input}) { id name labels integrationLevel webhooks { id signingSecret } apiDefinitions { data { id name } } } }`, { token })).result;
}

export async function registerRuntime(hub: TestHub, input: string, token?: string): Promise<{ id: string; [k: string]: any }> {
  return (await ok(hub, `mutation { result: registerRuntime(in: ${input}) { id name labels status { condition } } }`, { token })).result;
}
