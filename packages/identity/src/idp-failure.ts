import { errors } from 'jose';
import { IdentityError, type IdpUnreachableReason } from './identity-error.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Whether `error` (or an error in its `cause` chain) is a timeout or a network failure talking
 * to the IdP; `undefined` when it is neither.
 * @internal
 */
export function networkFailure(error: unknown): IdpUnreachableReason | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof errors.JWKSTimeout) return 'timeout';
    if (current.name === 'TimeoutError' || current.name === 'AbortError') return 'timeout';
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) {
      return code.includes('TIMEOUT') ? 'timeout' : 'unreachable';
    }
    if (current instanceof TypeError && current.message === 'fetch failed') return 'unreachable';
    current = current.cause;
  }
  return undefined;
}

/**
 * A cause that is safe to keep on an error: the lower layer's class name, code and OAuth error
 * code only, never its message (which may quote a response) or the response itself.
 * @internal
 */
export function safeCause(error: unknown): Error {
  if (!(error instanceof Error)) return new Error('non-error thrown');
  const parts = [error.name];
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') parts.push(code);
  const oauthError = (error as { error?: unknown }).error;
  if (typeof oauthError === 'string' && /^[\w.-]{1,64}$/.test(oauthError)) parts.push(oauthError);
  const network = networkFailure(error);
  if (network !== undefined) parts.push(network);
  return new Error(parts.join(' '));
}

const unreachableMessages: Record<IdpUnreachableReason, string> = {
  timeout: 'the identity provider did not answer in time',
  unreachable: 'the identity provider could not be reached',
  'bad-response': 'the identity provider sent an unusable answer',
};

/** The IdP-unreachable error for `reason`, with a sanitised cause. @internal */
export function idpUnreachable(
  reason: IdpUnreachableReason,
  cause?: unknown,
): IdentityError<'PCL_ERR_IDENTITY_IDP_UNREACHABLE'> {
  return new IdentityError(
    'PCL_ERR_IDENTITY_IDP_UNREACHABLE',
    reason,
    unreachableMessages[reason],
    cause === undefined ? undefined : { cause: safeCause(cause) },
  );
}
