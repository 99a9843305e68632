/** What the components module publishes: audit events only (`audit.components.<action>`). */
export const COMPONENT_AUDIT = {
  registered: 'registered',
  removed: 'removed',
} as const;
