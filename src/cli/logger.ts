import { pino, type Logger } from 'pino';

/** Structured logs on standard error, so standard output stays data. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { app: 'meshfed' } }, pino.destination(2));
}
