import { errorResponse } from '@portcullis/protocol-pg';

/** SQLSTATEs the gateway itself answers with. */
export const SqlState = {
  ProtocolViolation: '08P01',
  FeatureNotSupported: '0A000',
  InvalidAuthorization: '28000',
  InvalidPassword: '28P01',
  UnknownDatabase: '3D000',
  InsufficientPrivilege: '42501',
  UnableToConnect: '08001',
  ConnectionFailure: '08006',
  TooManyConnections: '53300',
  ProgramLimitExceeded: '54000',
  AdminShutdown: '57P01',
  InternalError: 'XX000',
} as const;

/** A FATAL ErrorResponse: the gateway closes the connection after sending it. */
export function fatal(code: string, message: string, hint?: string): Buffer {
  return errorResponse({
    severity: 'FATAL',
    code,
    message,
    ...(hint === undefined ? {} : { hint }),
  });
}
