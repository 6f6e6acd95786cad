import { errors } from 'jose';
import type { TokenRejectReason } from './identity-error.js';

/**
 * Maps an error thrown by jose's `jwtVerify` to a token reject reason, or `undefined` when the
 * error is not about the token (a key set that could not be fetched, for one).
 * @internal
 */
export function joseErrorReason(error: unknown): TokenRejectReason | undefined {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return 'missing-claims';
    switch (error.claim) {
      case 'iss':
        return 'wrong-issuer';
      case 'aud':
        return 'wrong-audience';
      case 'nbf':
        return 'not-yet-valid';
      default:
        return 'invalid-claims';
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg-not-allowed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'unknown-kid';
  if (
    error instanceof errors.JWSInvalid ||
    error instanceof errors.JWTInvalid ||
    error instanceof errors.JOSENotSupported
  ) {
    return 'malformed';
  }
  return undefined;
}

/** Upper bound on the length of a compact JWT accepted for verification. @internal */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Cheap shape check before any decoding: three base64url segments, bounded length. @internal */
export function looksLikeCompactJwt(token: unknown): token is string {
  return (
    typeof token === 'string' &&
    token.length <= MAX_TOKEN_LENGTH &&
    /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)
  );
}
