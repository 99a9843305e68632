/**
 * pino, with secrets redacted wherever they may appear in a logged object.
 * Modules take `logger.child({ module })`; requests and messages add `reqId`, `flowId`, `executionId`.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Paths redacted in every log line; bodies of requests are never logged as a whole. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers["connector-token"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["connector-token"]',
  'value',
  '*.value',
  'credentials',
  '*.credentials',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'plexus' },
    redact: { paths: REDACTED_PATHS, censor: '***' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
