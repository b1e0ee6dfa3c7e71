export { Keyward } from './client.js';
export type {
  CreateKeyInput,
  KeyFields,
  KeyStateName,
  KeywardOptions,
  ListAuditInput,
  ListKeysInput,
  Page,
  PageRequest,
  RateLimitInput,
  RateLimitStatus,
  RefillInput,
  TimeRange,
  VerifyCodeName,
  VerifyOptions,
  VerifyResult,
} from './client.js';
export { KeywardError } from './errors.js';
export { grantStrings, toGrants } from './grants.js';
export type { ActionName, GrantInput, Permission } from './grants.js';
export { isIdempotent } from './retry.js';
export { tokenSource, verifyToken } from './tokens.js';
export type { KeywardTokenPayload, TokenSource, TokenSourceOptions, VerifyTokenOptions } from './tokens.js';
export { KeyVerifier, apiKeyOf, decisionOf, looksLikeJwt, statusOf, tokenDecisionOf, verifyKey } from './middleware/core.js';
export type { Decision, GuardOptions, KeywardIdentity, TokenCheckOptions, VerifierOptions } from './middleware/core.js';
export { verifyWebhookSignature, WEBHOOK_EVENT_ID_HEADER, WEBHOOK_SIGNATURE_HEADER } from './webhooks.js';
