/**
 * The permission each GraphQL operation needs, in one table (the Director's counterpart of a
 * route's `config.permission`). `authenticated`: any caller. Object-level rules (an application
 * sees only itself, a runtime only its applications) are the service's.
 */
import type { Permission } from '../../contracts/permissions.js';

type Scope = Permission | 'authenticated';

export const OPERATION_SCOPES = {
  Query: {
    applications: 'application:read',
    application: 'application:read',
    applicationsForRuntime: 'application:read',
    applicationConfiguration: 'application:read',
    webhookDeliveries: 'application:read',
    runtimes: 'runtime:read',
    runtime: 'runtime:read',
    labelDefinitions: 'label_definition:read',
    labelDefinition: 'label_definition:read',
    healthChecks: 'authenticated',
    viewer: 'authenticated',
    tenants: 'authenticated',
    directorSettings: 'authenticated',
  },
  Mutation: {
    registerApplication: 'application:write',
    updateApplication: 'application:write',
    unregisterApplication: 'application:write',
    addWebhook: 'application:write',
    updateWebhook: 'application:write',
    deleteWebhook: 'application:write',
    addAPIDefinition: 'application:write',
    updateAPIDefinition: 'application:write',
    deleteAPIDefinition: 'application:write',
    refetchAPISpec: 'application:write',
    setAPIAuth: 'application:write',
    deleteAPIAuth: 'application:write',
    addEventDefinition: 'application:write',
    updateEventDefinition: 'application:write',
    deleteEventDefinition: 'application:write',
    refetchEventDefinitionSpec: 'application:write',
    addDocument: 'application:write',
    deleteDocument: 'application:write',
    setApplicationLabel: 'application:write',
    deleteApplicationLabel: 'application:write',
    setDefaultEventingForApplication: 'application:write',
    deleteDefaultEventingForApplication: 'application:write',
    requestClientCredentialsForApplication: 'application:write',
    deleteSystemAuthForApplication: 'application:write',
    requestOneTimeTokenForApplication: 'application:write',
    revokeApplicationCertificates: 'application:write',
    registerRuntime: 'runtime:write',
    updateRuntime: 'runtime:write',
    setRuntimeStatus: 'runtime:write',
    unregisterRuntime: 'runtime:write',
    setRuntimeLabel: 'runtime:write',
    deleteRuntimeLabel: 'runtime:write',
    requestClientCredentialsForRuntime: 'runtime:write',
    deleteSystemAuthForRuntime: 'runtime:write',
    requestOneTimeTokenForRuntime: 'runtime:write',
    revokeRuntimeCertificates: 'runtime:write',
    createLabelDefinition: 'label_definition:write',
    updateLabelDefinition: 'label_definition:write',
    deleteLabelDefinition: 'label_definition:write',
    // A tenant's own configuration: its administrator's.
    setDirectorSettings: 'tenant.all',
  },
} as const satisfies Record<'Query' | 'Mutation', Record<string, Scope>>;

export type QueryField = keyof (typeof OPERATION_SCOPES)['Query'];
export type MutationField = keyof (typeof OPERATION_SCOPES)['Mutation'];
