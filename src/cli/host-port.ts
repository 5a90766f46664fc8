import { UsageError } from './errors.js';

/** HOST:PORT or [IPv6]:PORT from an option (port 0: any free port). */
export function hostPort(value: string, option: string, example: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new UsageError(`${option} ${value}: expected HOST:PORT, e.g. 127.0.0.1:${example} or [::1]:${example}`);
  return { host: match[1] ?? match[2] ?? '', port };
}
