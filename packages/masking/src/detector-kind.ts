/** The content detectors, in the order their findings win a tie on kind. */
export const DETECTOR_KINDS = [
  'private-key',
  'jwt',
  'aws-key',
  'email',
  'card',
  'iban',
  'ssn',
  'phone',
  'ipv4',
  'ipv6',
  'api-token',
] as const;

/** One content detector. */
export type DetectorKind = (typeof DETECTOR_KINDS)[number];
