/**
 * Stores every `audit.*` event once, append-only, and answers queries scoped to the caller's
 * tenant. Deleting an account erases its name from the records that name it — including
 * records still on their way, which are stored anonymised when they arrive.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { listMeta, type ListMeta } from '../../contracts/list.js';
import { AuditEnvelope, AuditEventPayload, USER_DELETED_AUDIT_EVENT } from './audit.events.js';
import { Batcher, type BatchEntry } from '../../platform/batcher.js';
import * as repo from './audit.repo.js';
import type { AuditEntry, AuditListQuery } from './audit.schemas.js';

/** Larger details are replaced by a note: the log is for who did what, not for payloads. */
const MAX_DETAILS_CHARS = 16_384;

/** Which records a caller may see: one tenant, or (platform admins) all. */
export interface AuditScope {
  tenantId: string | undefined;
}

function toEntry(r: repo.AuditRow): AuditEntry {
  return {
    id: String(r.id),
    name: r.name,
    module: r.module,
    action: r.action,
    result: r.result,
    at: r.at.toISOString(),
    tenant: r.tenant_id,
    actor: r.actor_id || r.actor_name ? { id: r.actor_id, username: r.actor_name } : null,
    target: r.target_type ? { type: r.target_type, id: r.target_id, name: r.target_name } : null,
    sourceIp: r.source_ip,
    details: r.details,
    serviceName: r.service_name,
  };
}

function boundedDetails(details: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (!details) return null;
  const size = JSON.stringify(details).length;
  return size > MAX_DETAILS_CHARS ? { truncated: true, originalChars: size } : details;
}

/** One event ready to store; `erasedAccount` when it is the deletion of an account. */
interface AuditWrite {
  record: repo.NewAuditRecord;
  erasedAccount: string | undefined;
}

/** Parses a delivered event into its record; throws (dead-letter) only for what is not an audit event at all. */
function toWrite(delivered: unknown): AuditWrite {
  const envelope = AuditEnvelope.safeParse(delivered);
  if (!envelope.success) throw AppError.invalid(`not an event envelope: ${envelope.error.issues[0]?.message ?? 'invalid'}`);
  const { headers, payload } = envelope.data;
  const [prefix, module = '', ...rest] = headers.name.split('.');
  if (prefix !== 'audit') throw AppError.invalid(`not an audit event: ${headers.name}`);
  const parsed = AuditEventPayload.safeParse(payload);
  const p: AuditEventPayload = parsed.success ? parsed.data : {};
  const details = parsed.success ? boundedDetails(p.details) : boundedDetails({ unparsed: payload, problem: parsed.error.issues[0]?.message });
  const atMs = Date.parse(p.at ?? headers.createdAt ?? '');
  const record: repo.NewAuditRecord = {
    eventKey: createHash('sha256').update(JSON.stringify(delivered)).digest('hex'),
    name: headers.name,
    module,
    action: rest.join('.'),
    result: p.result ?? null,
    at: Number.isFinite(atMs) ? new Date(atMs) : new Date(),
    tenantId: p.tenantId ?? p.actor?.tenantId ?? null,
    actorId: p.actor?.accountId ?? null,
    actorName: p.actor?.username ?? null,
    sourceIp: p.sourceIp ?? null,
    targetType: p.target?.type ?? null,
    targetId: p.target?.id ?? null,
    targetName: p.target?.name ?? null,
    details,
    serviceName: headers.serviceName ?? null,
  };
  const erasedAccount = headers.name === USER_DELETED_AUDIT_EVENT && p.result === 'success' && p.target?.type === 'user' ? p.target.id : undefined;
  return { record, erasedAccount };
}

/** Most events per transaction (and per claim of the audit consumer). */
export const AUDIT_BATCH = 128;

export class AuditService {
  private readonly writes: Batcher<AuditWrite>;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {
    // Group commit: events delivered together are stored in one transaction (one lock, one
    // INSERT) instead of one each. PGlite runs one statement at a time; on PostgreSQL two batches
    // may commit at once while the next one forms.
    this.writes = new Batcher({ maxBatch: AUDIT_BATCH, maxInFlight: db.dialect === 'pglite' ? 1 : 2, flush: (batch) => this.flush(batch) });
  }

  /**
   * Stores one delivered event; resolves once the transaction holding it committed (so the bus
   * acks only what is stored). A redelivery of the same event is a no-op.
   */
  async store(delivered: unknown): Promise<void> {
    await this.writes.add(toWrite(delivered));
  }

  private async flush(batch: ReadonlyArray<BatchEntry<AuditWrite, void>>): Promise<void> {
    try {
      await this.storeBatch(batch.map((b) => b.item));
      batch.forEach((b) => b.resolve());
      return;
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad event must not fail (and get retried or dead-lettered with) its neighbours:
      // store them one by one, so only the bad one fails, as it would alone.
      this.logger.warn({ err, size: batch.length }, 'audit: storing a batch failed; storing its events one by one');
    }
    for (const b of batch) {
      try {
        await this.storeBatch([b.item]);
        b.resolve();
      } catch (err) {
        b.reject(err);
      }
    }
  }

  /**
   * One transaction for the batch. Erasures go first, under the lock that keeps concurrent inserts
   * out, so every record of the batch naming an erased account — whether published before or
   * after the deletion — is stored anonymised, as are records that arrive in later batches.
   */
  private async storeBatch(writes: readonly AuditWrite[]): Promise<void> {
    const erased = [...new Set(writes.flatMap((w) => (w.erasedAccount ? [w.erasedAccount] : [])))];
    const records = [...new Map(writes.map((w) => [w.record.eventKey, w.record])).values()];
    await this.db.transaction(async (tx) => {
      if (erased.length > 0) {
        await repo.lockForErasure(tx);
        for (const accountId of erased) {
          await repo.insertErasure(tx, accountId);
          const n = await repo.anonymiseAccount(tx, accountId);
          this.logger.info({ accountId, records: n }, 'account name erased from the audit log');
        }
      } else {
        await repo.lockForInsert(tx);
      }
      await repo.insertRecords(tx, records);
    });
  }

  async list(scope: AuditScope, q: AuditListQuery): Promise<{ data: AuditEntry[]; meta: ListMeta }> {
    const from = q['filter[from]'] ? new Date(q['filter[from]']) : undefined;
    const to = q['filter[to]'] ? new Date(q['filter[to]']) : undefined;
    if (from && to && from >= to) throw AppError.invalid('filter[from] must be before filter[to]');
    const name = q['filter[name]'];
    const wildcard = name !== undefined && /[*>]$/.test(name);
    const f: repo.AuditFilter = {
      tenantId: scope.tenantId,
      name: wildcard ? undefined : name,
      namePrefix: wildcard ? name.slice(0, -1) : undefined,
      module: q['filter[module]'],
      result: q['filter[result]'],
      user: q['filter[user]'],
      from,
      to,
      search: q.search,
    };
    // A platform admin may narrow to one tenant; a tenant's users are always narrowed to theirs.
    const wantedTenant = q['filter[tenant]'];
    if (wantedTenant !== undefined) {
      if (scope.tenantId !== undefined && wantedTenant !== scope.tenantId) return { data: [], meta: listMeta(0, q['page[number]'], q['page[size]']) };
      f.tenantId = wantedTenant;
    }
    const size = q['page[size]'];
    const number = q['page[number]'];
    const [total, rows] = await Promise.all([
      repo.countRecords(this.db, f),
      repo.listRecords(this.db, f, (q.sort ?? '-at') === '-at', size, (number - 1) * size),
    ]);
    return { data: rows.map(toEntry), meta: listMeta(total, number, size) };
  }

  async get(scope: AuditScope, id: string): Promise<AuditEntry> {
    const row = await repo.findRecord(this.db, Number(id), scope.tenantId);
    if (!row) throw AppError.notFound(`audit record ${id}`);
    return toEntry(row);
  }
}
