/**
 * Enrolment and identity of workers, and their logical configuration.
 *
 * - Enrolment secret `pwe_<id>.<secret>`: created by an administrator for one tenant and a list
 *   of components (`name` or `name@major`); stored as a SHA-256 hash; single use; expires.
 * - Worker credential `pwc_<id>.<secret>`: issued on the connect that used an enrolment secret,
 *   bound to the worker's name; presented on every later connect. Enrolling again under the
 *   same name replaces it.
 * - Logical configuration: the key values a worker instance announces, checked against the keys
 *   its components declare (mandatory ones enforced), stored per tenant and worker, versioned.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AuditPublisher } from '../../platform/audit.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { CertificateIdentity } from '../connector/index.js';
import { allowedBy } from './router.protocol.js';
import * as repo from './router.repo.js';

export const ENROLMENT_PREFIX = 'pwe_';
export const CREDENTIAL_PREFIX = 'pwc_';

export interface Enrolment {
  id: string;
  tenant: string;
  components: string[];
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  workerId: string | null;
}

export interface Identity {
  /** Row id of the enrolled worker. */
  id: string;
  tenant: string;
  workerId: string;
  /** Components (`name`, `name@major`, `*`) it may serve. */
  allowed: string[];
  /** Present on the connect that enrolled: the credential to hand back once. */
  newCredential?: string;
  /** Set when the worker attached with a Connector client certificate (its fingerprint). */
  certificate?: string;
}

/**
 * Client certificates as the Connector checks them (its public entry): the hub's CA, and the
 * identity a verified certificate stands for (401 when unknown, revoked, expired or its system
 * auth is gone). The ConnectorService is one.
 */
export interface WorkerCertificates {
  readonly caPem: string;
  identityOf(fingerprint: string, ip: string): Promise<CertificateIdentity>;
  /** Forget cached identities (a revocation was heard). */
  onRevoked(): void;
}

export interface ConfigurationKey {
  mandatory: boolean;
  description?: string;
}

function hash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `<prefix><id>.<secret>` → its parts, or undefined when it does not have that shape. */
function split(token: string, prefix: string): { id: string; secret: string } | undefined {
  if (!token.startsWith(prefix)) return undefined;
  const rest = token.slice(prefix.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { id: rest.slice(0, dot), secret: rest.slice(dot + 1) };
}

function toEnrolment(r: repo.EnrolmentRow): Enrolment {
  return { id: r.id, tenant: r.tenant_id, components: r.components, createdAt: r.created_at.toISOString(), expiresAt: r.expires_at.toISOString(), usedAt: r.used_at?.toISOString() ?? null, workerId: r.worker_id };
}

const refused = (message: string) => new AppError('UNAUTHENTICATED', message);

export class RouterService {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditPublisher,
    private readonly logger: Logger,
  ) {}

  async createEnrolment(principal: Principal, input: { components: string[]; expiresInSeconds: number }, ip?: string): Promise<Enrolment & { secret: string }> {
    const id = randomUUID();
    const secret = randomBytes(32).toString('base64url');
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.insertEnrolment(tx, {
        id,
        tenantId: principal.tenantId,
        secretHash: hash(secret),
        components: input.components,
        createdBy: principal.accountId,
        expiresAt: new Date(Date.now() + input.expiresInSeconds * 1000),
      });
      await this.audit.record(
        { action: 'enrolment.created', actor: principal, tenantId: principal.tenantId, target: { type: 'worker-enrolment', id }, result: 'success', sourceIp: ip, details: { components: input.components, expiresAt: r.expires_at.toISOString() } },
        { tx },
      );
      return r;
    });
    return { ...toEnrolment(row), secret: `${ENROLMENT_PREFIX}${id}.${secret}` };
  }

  async listEnrolments(tenant: string): Promise<Enrolment[]> {
    return (await repo.listEnrolments(this.db, tenant)).map(toEnrolment);
  }

  /**
   * The Secret exchange of a hello: an enrolment secret (first connect: used up, a credential
   * issued) or a credential. Throws UNAUTHENTICATED naming what is wrong, never which part of a
   * valid-looking secret failed to match.
   */
  async authenticate(hello: { worker_id: string; enrolment_secret: string; credential: string }, certificatesAccepted = false): Promise<Identity> {
    if (hello.credential) {
      const parts = split(hello.credential, CREDENTIAL_PREFIX);
      if (!parts) throw refused('the credential is malformed (expected pwc_<id>.<secret>)');
      const row = await repo.findWorker(this.db, parts.id);
      if (!row || row.revoked_at || !sameHash(row.credential_hash, hash(parts.secret))) throw refused('unknown or revoked worker credential');
      if (row.worker_id !== hello.worker_id) throw refused(`the credential belongs to worker ${row.worker_id}, not ${hello.worker_id}`);
      void repo.touchWorker(this.db, row.id).catch((err: unknown) => this.logger.debug({ err }, 'router: touching the worker failed'));
      return { id: row.id, tenant: row.tenant_id, workerId: row.worker_id, allowed: row.components };
    }
    if (!hello.enrolment_secret) {
      throw refused(
        certificatesAccepted
          ? "hello carries neither an enrolment secret nor a credential, and the connection has no client certificate issued by this hub's CA (one of another CA or self-signed is not accepted)"
          : 'hello carries neither an enrolment secret nor a credential',
      );
    }
    const parts = split(hello.enrolment_secret, ENROLMENT_PREFIX);
    if (!parts) throw refused('the enrolment secret is malformed (expected pwe_<id>.<secret>)');
    const enrolment = await repo.findEnrolment(this.db, parts.id);
    if (!enrolment || !sameHash(enrolment.secret_hash, hash(parts.secret))) throw refused('unknown enrolment secret');
    if (enrolment.used_at) throw refused('the enrolment secret was used already (it is single use; ask an administrator for a new one)');
    if (enrolment.expires_at.getTime() <= Date.now()) throw refused(`the enrolment secret expired at ${enrolment.expires_at.toISOString()}`);
    const id = randomUUID();
    const secret = randomBytes(32).toString('base64url');
    await this.db.transaction(async (tx) => {
      if (!(await repo.useEnrolment(tx, enrolment.id, hello.worker_id))) throw refused('the enrolment secret was used already (it is single use)');
      await repo.upsertWorker(tx, { id, tenantId: enrolment.tenant_id, workerId: hello.worker_id, credentialHash: hash(secret), components: enrolment.components, enrolmentId: enrolment.id });
      await this.audit.record({ action: 'worker.enrolled', tenantId: enrolment.tenant_id, target: { type: 'worker', id: hello.worker_id }, result: 'success', details: { enrolmentId: enrolment.id, components: enrolment.components } }, { tx });
    });
    return { id, tenant: enrolment.tenant_id, workerId: hello.worker_id, allowed: enrolment.components, newCredential: `${CREDENTIAL_PREFIX}${id}.${secret}` };
  }

  /**
   * A worker that presented a client certificate the TLS handshake verified against the hub's
   * CA: the certificate's CN is a Director system auth (the Connector maps it to the tenant and
   * the object paired). Only a runtime's certificate attaches a worker, and it may serve any
   * component of its tenant — a runtime is what runs integrations; an application's certificate
   * identifies the system integrated, not something that runs steps.
   */
  async authenticateCertificate(certs: WorkerCertificates, fingerprint: string, ip: string, hello: { worker_id: string }): Promise<Identity> {
    let cert: CertificateIdentity;
    try {
      cert = await certs.identityOf(fingerprint, ip);
    } catch (err) {
      throw refused(err instanceof Error ? err.message : String(err));
    }
    const c = cert.certificate;
    if (c.object_type !== 'runtime') throw new AppError('FORBIDDEN', `the client certificate belongs to ${c.object_type} ${c.object_id}: only a runtime's certificate attaches a worker (or use an enrolment secret)`);
    return { id: `certificate:${c.serial}`, tenant: c.tenant_id, workerId: hello.worker_id, allowed: ['*'], certificate: fingerprint };
  }

  /** Refuses an offer the enrolment does not cover (FORBIDDEN naming it). */
  checkOffers(identity: Identity, offers: ReadonlyArray<{ name: string; version: string }>): void {
    const denied = offers.filter((o) => !allowedBy(identity.allowed, o.name, o.version)).map((o) => `${o.name}@${o.version}`);
    if (denied.length > 0) throw new AppError('FORBIDDEN', `worker ${identity.workerId} may not serve ${denied.join(', ')} (its enrolment allows ${identity.allowed.join(', ') || 'nothing'})`);
  }

  /**
   * Validates a logical configuration against the declared keys (unknown keys and missing
   * mandatory ones refused), stores it when it differs from the one in force, and answers the
   * configuration in force. An empty one keeps the stored configuration.
   */
  async applyConfiguration(identity: Identity, declared: ReadonlyMap<string, ConfigurationKey>, configuration: Record<string, unknown> | undefined): Promise<{ configuration: Record<string, unknown>; version: number }> {
    const current = await repo.latestConfiguration(this.db, identity.tenant, identity.workerId);
    const wanted = configuration ?? current?.configuration ?? {};
    const problems: string[] = [];
    for (const key of Object.keys(wanted)) if (!declared.has(key)) problems.push(`${key}: not a configuration key of the worker's components`);
    for (const [key, d] of declared) if (d.mandatory && (wanted[key] === undefined || wanted[key] === null || wanted[key] === '')) problems.push(`${key}: mandatory`);
    if (problems.length > 0) throw AppError.invalid(`configuration: ${problems.join('; ')}`);
    if (current && JSON.stringify(current.configuration) === JSON.stringify(wanted)) return current;
    if (!current && Object.keys(wanted).length === 0) return { configuration: {}, version: 0 };
    const version = (current?.version ?? 0) + 1;
    if (!(await repo.insertConfiguration(this.db, identity.tenant, identity.workerId, version, wanted))) {
      // Another instance stored one at the same time: the stored one is in force.
      return (await repo.latestConfiguration(this.db, identity.tenant, identity.workerId)) ?? { configuration: wanted, version };
    }
    return { configuration: wanted, version };
  }
}
