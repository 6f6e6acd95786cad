/**
 * Identity for Portcullis: gateway credentials (short-lived JWTs signed with rotating keys),
 * verification of tokens from any OIDC IdP for people and agents, the device and PKCE login
 * flows for the CLI, a private credential file, and agent delegations with an RFC 8693-shaped
 * token exchange.
 *
 * @packageDocumentation
 */
export {
  CredentialStore,
  type CredentialStoreOptions,
  type StoredCredentials,
  type UserConfigLocation,
} from './credential-store.js';
export {
  FileDelegationStore,
  InMemoryDelegationStore,
  type Delegation,
  type DelegationFilter,
  type DelegationStore,
  type FileDelegationStoreOptions,
} from './delegation-store.js';
export {
  Delegations,
  type CreateDelegationInput,
  type DelegationsOptions,
  type ExchangeTokenInput,
  type ListDelegationsInput,
} from './delegations.js';
export {
  GATEWAY_AUDIENCE,
  type ActingAgent,
  type ActorClaim,
  type CredentialAuthMethod,
  type GatewayCredentialClaims,
  type VerifiedGatewayCredential,
} from './gateway-credential.js';
export {
  GatewayCredentialIssuer,
  type GatewayCredentialIssuerOptions,
  type IssueCredentialInput,
  type IssuedCredential,
} from './gateway-credential-issuer.js';
export {
  GatewayCredentialVerifier,
  type GatewayCredentialVerifierOptions,
} from './gateway-credential-verifier.js';
export {
  IdentityError,
  identityErrorCatalog,
  isIdentityError,
  type DelegationRefusedReason,
  type IdentityErrorCode,
  type IdentityErrorReasons,
  type IdpUnreachableReason,
  type LoginFailedReason,
  type TokenRejectReason,
} from './identity-error.js';
export {
  IdpVerifier,
  type AgentIdentity,
  type IdpTokenIdentity,
  type IdpVerifierOptions,
} from './idp-verifier.js';
export {
  KeyRing,
  type GatewaySigningAlg,
  type KeyRingOptions,
  type SigningKey,
} from './key-ring.js';
export {
  OidcClient,
  type DeviceLogin,
  type OidcClientOptions,
  type OidcTokens,
  type PkceLogin,
  type PkceLoginOptions,
  type PollDeviceLoginOptions,
  type RedirectLogin,
  type TokenRequest,
} from './oidc-client.js';
