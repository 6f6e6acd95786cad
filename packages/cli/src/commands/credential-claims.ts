/** What a gateway credential says about itself, read for display (not verified). */
export interface CredentialSummary {
  readonly subject: string;
  readonly email: string;
  readonly groups: readonly string[];
  /** Epoch milliseconds. */
  readonly expiresAt: number;
  /** The agent acting for the person, when there is one. */
  readonly agent: { readonly id: string; readonly name: string | null } | null;
  /** The only resources the credential opens; null for all the person may use. */
  readonly resources: readonly string[] | null;
}

/**
 * Reads the claims of a gateway credential (a JWT) without checking its signature: only to
 * show the user who they are and until when. The gateway verifies; nothing here decides access.
 * Returns `undefined` for anything that is not a JWT with `sub` and `exp`.
 */
export function readCredentialClaims(token: string): CredentialSummary | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null) return undefined;
  const { sub, exp, email, groups, act, resources } = claims;
  if (typeof sub !== 'string' || typeof exp !== 'number') return undefined;
  const actor = typeof act === 'object' && act !== null ? (act as Record<string, unknown>) : null;
  return {
    subject: sub,
    email: typeof email === 'string' ? email : '',
    groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
    expiresAt: exp * 1000,
    agent:
      actor !== null && typeof actor['sub'] === 'string'
        ? { id: actor['sub'], name: typeof actor['name'] === 'string' ? actor['name'] : null }
        : null,
    resources: Array.isArray(resources)
      ? resources.filter((r): r is string => typeof r === 'string')
      : null,
  };
}
