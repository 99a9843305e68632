/** Pieces several command groups share: paging options and looking objects up by name or id. */
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import type { Flow } from '../../contracts/flows.js';
import { fetchAll, type Page, type Paging, type PlexusClient } from '../client.js';
import { ApiError, CliError, EXIT } from '../errors.js';
import { positiveInt } from '../options.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface PagingOpts {
  page?: number;
  pageSize?: number;
  all?: true;
}

export function addPagingOptions<O extends OptionValues, G extends OptionValues>(cmd: Command<[], O, G>) {
  return cmd
    .addOption(new Option('--page <n>', 'page number').argParser(positiveInt))
    .addOption(new Option('--page-size <n>', 'items per page (at most 100)').argParser(positiveInt))
    .addOption(new Option('--all', 'every page').conflicts(['page']));
}

/** One page as asked, or every page with `--all`. */
export async function listPaged<T>(opts: PagingOpts, fetchPage: (p: Paging) => Promise<Page<T>>): Promise<Page<T>> {
  if (opts.all) {
    const data = await fetchAll(fetchPage);
    return { data, meta: { total: data.length, page: 1, perPage: data.length, totalPages: 1 } };
  }
  return fetchPage({ page: opts.page, pageSize: opts.pageSize });
}

/**
 * A flow named by its id or its name. Names are what people and files use; the hub does not
 * keep them unique, so a name shared by several flows is refused with their ids.
 */
export async function resolveFlow(client: PlexusClient, ref: string): Promise<Flow> {
  if (UUID.test(ref)) {
    try {
      return await client.getFlow(ref);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
    }
  }
  const candidates = await fetchAll((p) => client.listFlows({ ...p, search: ref.slice(0, 200) }));
  const matches = candidates.filter((f) => f.name === ref);
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new CliError(`flow ${JSON.stringify(ref)} not found (by id or name)`, EXIT.notFound);
  throw new CliError(`${matches.length} flows are named ${JSON.stringify(ref)}: ${matches.map((m) => m.id).join(', ')}; use an id`, EXIT.conflict);
}

/** A secret named by its id or its name (names are unique per tenant). */
export async function resolveSecretId(client: PlexusClient, ref: string): Promise<string> {
  if (UUID.test(ref)) return ref;
  const page = await client.listSecrets({ 'filter[name]': ref.slice(0, 200), pageSize: 2 });
  const match = page.data.find((s) => s.name === ref);
  if (!match) throw new CliError(`secret ${JSON.stringify(ref)} not found (by id or name)`, EXIT.notFound);
  return match.id;
}
