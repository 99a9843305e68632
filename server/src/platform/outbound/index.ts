/** Outbound HTTP(S) on behalf of tenants, under the operator's network policy. See README.md beside this file. */
export { createOutbound, type CodeFetch, type Outbound, type OutboundOptions, type OutboundRequest, type OutboundResponse, type ResolveAll } from './outbound.js';
export { AllowList, parseAllowedHosts, refusalOf, type OutboundPolicy } from './policy.js';
export { isNonPublicAddress, nonPublicRangeOf, SPECIAL_IPV4, SPECIAL_IPV6, type SpecialRange } from './ranges.js';
