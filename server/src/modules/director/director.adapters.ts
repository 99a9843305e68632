/**
 * The Director's ports served by the hub's other modules: credentials by the secrets module,
 * identities by IAM service accounts, tenants by IAM. Only their public services are used.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import { isPlatformAdmin, type Principal } from '../../platform/http/index.js';
import type { IamService } from '../iam/index.js';
import type { SecretsService } from '../secrets/index.js';
import type { Caller, CredentialStore, IdentityIssuer, TenantLister } from './director.ports.js';

const ctxOf = (caller: Caller) => ({ principal: caller.principal, ip: caller.ip });

export function secretsCredentialStore(secrets: SecretsService): CredentialStore {
  return {
    async save(caller, name, value) {
      const created = await secrets.create(ctxOf(caller), { name, type: 'mixed', value });
      return created.id;
    },
    async read(tenantId, secretId, caller) {
      // A caller's read is audited as theirs; the hub's own (signing, fetching) as a step's use.
      if (caller) return (await secrets.getRaw(ctxOf(caller), secretId)).value;
      return (await secrets.resolveForStep(tenantId, secretId, {})).value;
    },
    async remove(caller, secretId) {
      try {
        await secrets.delete(ctxOf(caller), secretId);
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'NOT_FOUND')) throw err;
      }
    },
  };
}

/** An application or runtime is an IAM service account holding only the Director scopes it needs. */
export function iamIdentityIssuer(iam: IamService): IdentityIssuer {
  return {
    async issue(caller, object) {
      const ctx = ctxOf(caller);
      const account = await iam.createUser(ctx, {
        username: `director-${object.type}-${randomUUID()}`,
        kind: 'service',
        tenant: object.tenantId,
        permissions: [...object.permissions],
        roles: [],
      });
      const issued = await iam.issueToken(ctx, { accountId: account.id, description: `Director ${object.type} ${object.id}` });
      return { kind: 'iam-token', accountId: account.id, token: issued.token };
    },
    async revoke(caller, accountId) {
      try {
        await iam.deleteUser(ctxOf(caller), accountId);
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'NOT_FOUND')) throw err;
      }
    },
  };
}

export function iamTenantLister(iam: IamService): TenantLister {
  return async (principal: Principal) => {
    if (!isPlatformAdmin(principal)) {
      const t = await iam.getTenant(principal.tenantId).catch(() => undefined);
      return [{ id: principal.tenantId, name: t?.name ?? null }];
    }
    const all = await iam.listTenants({ 'page[size]': 100, 'page[number]': 1 } as never);
    return all.data.map((t) => ({ id: t.id, name: t.name }));
  };
}
