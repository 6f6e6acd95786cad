/**
 * Typed errors of the identity package. Each has a stable `code` (the `PCL_ERR_IDENTITY_*` list
 * below, kept here until the gateway merges it into core's catalog) and a `reason` from a small
 * fixed set. Messages are short fixed sentences: they never carry a token, a secret, a key or
 * text that a peer sent, so they are safe to log and to map onto a client-facing error.
 */
export const identityErrorCatalog = {
  PCL_ERR_IDENTITY_TOKEN_INVALID: {
    retriable: false,
    summary:
      'A token failed verification (signature, algorithm, key id, time window, issuer, audience or claims).',
  },
  PCL_ERR_IDENTITY_IDP_UNREACHABLE: {
    retriable: true,
    summary:
      'The identity provider did not answer in time, refused the connection or answered with something unusable.',
  },
  PCL_ERR_IDENTITY_LOGIN_FAILED: {
    retriable: false,
    summary:
      'A device or browser login did not complete (denied, expired, state mismatch, rejected by the IdP).',
  },
  PCL_ERR_IDENTITY_DELEGATION_REFUSED: {
    retriable: false,
    summary:
      'A token exchange was refused: the delegation is unknown, revoked, expired, for another agent or out of scope.',
  },
  PCL_ERR_IDENTITY_DELEGATION_INVALID: {
    retriable: false,
    summary:
      'A delegation request is malformed (no resources, non-positive or too long TTL, empty agent id).',
  },
  PCL_ERR_IDENTITY_FILE_INSECURE: {
    retriable: false,
    summary:
      'A credential, key or delegation file is readable by group or others, so it is not used.',
  },
  PCL_ERR_IDENTITY_FILE_CORRUPT: {
    retriable: false,
    summary: 'A credential, key or delegation file could not be parsed.',
  },
} as const satisfies Record<string, { retriable: boolean; summary: string }>;

/** Every code an {@link IdentityError} carries. */
export type IdentityErrorCode = keyof typeof identityErrorCatalog;

/** Why a token was rejected. */
export type TokenRejectReason =
  | 'malformed'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'unknown-kid'
  | 'alg-not-allowed'
  | 'bad-signature'
  | 'missing-claims'
  | 'invalid-claims';

/** Why the IdP could not be used. */
export type IdpUnreachableReason = 'timeout' | 'unreachable' | 'bad-response';

/** Why a login did not complete. */
export type LoginFailedReason = 'denied' | 'expired' | 'timeout' | 'state-mismatch' | 'rejected';

/** Why a token exchange was refused. */
export type DelegationRefusedReason =
  'unknown' | 'revoked' | 'expired' | 'out-of-scope' | 'wrong-agent' | 'wrong-person';

/** The reason types, by code. */
export interface IdentityErrorReasons {
  PCL_ERR_IDENTITY_TOKEN_INVALID: TokenRejectReason;
  PCL_ERR_IDENTITY_IDP_UNREACHABLE: IdpUnreachableReason;
  PCL_ERR_IDENTITY_LOGIN_FAILED: LoginFailedReason;
  PCL_ERR_IDENTITY_DELEGATION_REFUSED: DelegationRefusedReason;
  PCL_ERR_IDENTITY_DELEGATION_INVALID: 'no-resources' | 'bad-ttl' | 'bad-agent' | 'bad-person';
  PCL_ERR_IDENTITY_FILE_INSECURE: 'group-or-world-readable';
  PCL_ERR_IDENTITY_FILE_CORRUPT: 'unparsable' | 'wrong-shape';
}

const tokenMessages: Record<TokenRejectReason, string> = {
  malformed: 'token is not a well-formed JWT',
  expired: 'token has expired',
  'not-yet-valid': 'token is not valid yet',
  'wrong-issuer': 'token was issued by an unexpected issuer',
  'wrong-audience': 'token is meant for another audience',
  'unknown-kid': 'token names a signing key that is not known',
  'alg-not-allowed': 'token uses a signing algorithm that is not allowed',
  'bad-signature': 'token signature does not verify',
  'missing-claims': 'token lacks required claims',
  'invalid-claims': 'token claims have the wrong shape',
};

/**
 * An error of the identity package. `code` says what failed, `reason` why, from a fixed set.
 * `cause` may hold the lower-layer error (jose, openid-client, fs); those never carry the
 * token or a secret either, which the tests check.
 */
export class IdentityError<C extends IdentityErrorCode = IdentityErrorCode> extends Error {
  readonly code: C;
  readonly reason: IdentityErrorReasons[C];
  readonly retriable: boolean;

  constructor(
    code: C,
    reason: IdentityErrorReasons[C],
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IdentityError';
    this.code = code;
    this.reason = reason;
    this.retriable = identityErrorCatalog[code].retriable;
  }

  /** A token rejection with the fixed message for `reason`. */
  static token(
    reason: TokenRejectReason,
    cause?: unknown,
  ): IdentityError<'PCL_ERR_IDENTITY_TOKEN_INVALID'> {
    return new IdentityError(
      'PCL_ERR_IDENTITY_TOKEN_INVALID',
      reason,
      tokenMessages[reason],
      cause === undefined ? undefined : { cause },
    );
  }
}

/** True when `err` is an {@link IdentityError}, optionally with the given code. */
export function isIdentityError<C extends IdentityErrorCode>(
  err: unknown,
  code?: C,
): err is IdentityError<C> {
  return err instanceof IdentityError && (code === undefined || err.code === code);
}
