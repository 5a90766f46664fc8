import { pino, type Logger } from 'pino';

/** Structured logs on standard error, so standard output stays data. */
export function createLogger(level = process.env.MESHFED_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'meshfed' } }, pino.destination(2));
}
