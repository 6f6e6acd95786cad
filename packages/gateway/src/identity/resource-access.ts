import type { IdentityConfig } from '../config/load-config.js';

/**
 * Whether a person in `groups` may use `resource` under the configured group access (pure).
 * `*` in a grant's resources means every resource.
 */
export function groupsMayUse(
  access: IdentityConfig['groupAccess'],
  groups: readonly string[],
  resource: string,
): boolean {
  return access.some(
    (grant) =>
      grant.groups.some((g) => groups.includes(g)) &&
      (grant.resources.includes('*') || grant.resources.includes(resource)),
  );
}

/** The resources a person in `groups` may use, among `all`. */
export function resourcesFor(
  access: IdentityConfig['groupAccess'],
  groups: readonly string[],
  all: readonly string[],
): string[] {
  return all.filter((resource) => groupsMayUse(access, groups, resource));
}
