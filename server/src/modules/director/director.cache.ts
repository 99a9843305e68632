/**
 * An exact cache of Director query answers.
 *
 * Glossary
 * - Version: a number per tenant that every change to the tenant's Director rows raises in the
 *   changing transaction (statement triggers, migration 0041). It is read from the database for
 *   every cacheable request, so a change committed by any process is seen by all of them at once.
 * - Entry: the serialised answer to one request — tenant, caller (account, kind, permissions, the
 *   application or runtime it stands for), query text, variables, operation name — tagged with
 *   the version read before the request ran. It is served only to a request that reads the same
 *   version; a stale entry is dropped when it is met.
 * - Cacheable: a query whose answer depends on nothing but the tenant's Director rows and the
 *   caller, and that reads some of those rows (`{ viewer { id } }` costs less than the version). Mutations are not; neither are fields that read elsewhere or audit their reads:
 *   `tenants` (IAM), `auth` / `auths` / `defaultAuth` (credentials a runtime reads in clear, and
 *   each read is audited). Answers with errors are never stored (a denial is audited each time).
 *
 * Why exact: an entry tagged v was computed by a request that read v, so it holds every change
 * committed before v was read (and perhaps some after — never older data). A request that starts
 * after a change commits reads a higher version and misses.
 */
import { createHash } from 'node:crypto';
import { Kind, OperationTypeNode, parse, visit, type DocumentNode } from 'graphql';
import type { Caller } from './director.ports.js';

/** Fields whose answer depends on more than the tenant's Director rows and the caller. */
// oneTimeToken: kept in the Connector's tables, which do not raise the Director's tenant version.
const UNCACHEABLE_FIELDS = new Set(['tenants', 'auth', 'auths', 'defaultAuth', 'oneTimeToken']);
/** Root fields that read no Director rows: answering them costs less than reading the version. */
const ROOT_FIELDS_WITHOUT_ROWS = new Set(['viewer', 'healthChecks', '__typename']);
/** Query texts whose cacheability is remembered; longer texts are parsed again when they come. */
const MAX_REMEMBERED_DOCUMENTS = 512;
const MAX_REMEMBERED_TEXT = 16 * 1024;

interface Entry {
  version: number;
  /** UTF-8 already: a hit is written out as it is (encoding a 25 KB page anew cost ~10 % of a hit). */
  body: Buffer;
}

export class QueryCache {
  /** Least recently used first (Map keeps insertion order; a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private size = 0;
  private readonly documents = new Map<string, boolean>();
  private readonly maxEntrySize: number;

  /** `maxSize`: bytes of stored answers. */
  constructor(private readonly maxSize: number) {
    this.maxEntrySize = Math.floor(maxSize / 16);
  }

  /** The key of a request if its answer may be cached, else undefined. */
  keyOf(caller: Caller, query: string, variables: unknown, operationName: string | null | undefined): string | undefined {
    if (!this.isCacheable(query, operationName ?? undefined)) return undefined;
    const p = caller.principal;
    return createHash('sha256')
      .update(JSON.stringify([p.tenantId, p.accountId, p.kind, p.permissions, caller.object?.type ?? null, caller.object?.id ?? null, query, variables ?? null, operationName ?? null]))
      .digest('base64');
  }

  get(key: string, version: number): Buffer | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.version !== version) {
      this.size -= entry.body.length;
      return undefined;
    }
    this.entries.set(key, entry);
    return entry.body;
  }

  set(key: string, version: number, body: Buffer): void {
    if (body.length > this.maxEntrySize) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.size -= old.body.length;
    }
    this.entries.set(key, { version, body });
    this.size += body.length;
    for (const [k, e] of this.entries) {
      if (this.size <= this.maxSize) break;
      this.entries.delete(k);
      this.size -= e.body.length;
    }
  }

  private isCacheable(query: string, operationName: string | undefined): boolean {
    // The operation name picks the operation, so it is part of what is remembered.
    const memo = operationName === undefined ? query : `${operationName}\n${query}`;
    const known = this.documents.get(memo);
    if (known !== undefined) return known;
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch {
      // The request itself reports the syntax error.
      return false;
    }
    const cacheable = isCacheableDocument(document, operationName);
    if (query.length <= MAX_REMEMBERED_TEXT) {
      if (this.documents.size >= MAX_REMEMBERED_DOCUMENTS) this.documents.clear();
      this.documents.set(memo, cacheable);
    }
    return cacheable;
  }
}

function isCacheableDocument(document: DocumentNode, operationName: string | undefined): boolean {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const operation = operationName === undefined ? (operations.length === 1 ? operations[0] : undefined) : operations.find((o) => o.name?.value === operationName);
  if (!operation || operation.operation !== OperationTypeNode.QUERY) return false;
  const roots = operation.selectionSet.selections;
  if (roots.every((r) => r.kind === Kind.FIELD && ROOT_FIELDS_WITHOUT_ROWS.has(r.name.value))) return false;
  // Any field of the document, fragments included, by name: a fragment not spread is harmless to count.
  let cacheable = true;
  visit(document, {
    Field(node) {
      if (UNCACHEABLE_FIELDS.has(node.name.value)) cacheable = false;
    },
  });
  return cacheable;
}
