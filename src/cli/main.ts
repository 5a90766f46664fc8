#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import { apiCommand } from './api-token.js';
import { caCommand } from './ca.js';
import { clusterCommand } from './cluster.js';
import { drillCommand } from './drill.js';
import { explainCommand } from './explain.js';
import { gatewayCommand } from './gateway.js';
import { EXIT, UsageError } from './errors.js';
import { serveCommand } from './serve.js';
import { simClusterCommand } from './sim-cluster.js';
import { vdCommand } from './vd.js';
import { xdsCommand } from './xds.js';

function program(): Command {
  return new Command('meshfed')
    .description('multicluster service-mesh federation manager: one trust domain across clusters, split-horizon EDS, failover-aware virtual destinations, failover drills')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addCommand(caCommand())
    .addCommand(clusterCommand())
    .addCommand(vdCommand())
    .addCommand(drillCommand())
    .addCommand(serveCommand())
    .addCommand(gatewayCommand())
    .addCommand(simClusterCommand())
    .addCommand(xdsCommand())
    .addCommand(explainCommand())
    .addCommand(apiCommand());
}

function exitOverrideAll(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) exitOverrideAll(sub);
}

export async function main(argv: string[]): Promise<number> {
  const cli = program();
  exitOverrideAll(cli);
  try {
    await cli.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`meshfed: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof ZodError) {
      process.stderr.write(`meshfed: ${error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}\n`);
      return EXIT.failure;
    }
    process.stderr.write(`meshfed: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failure;
  }
}

const code = await main(process.argv.slice(2));
// the command is done: what a library leaves open must not keep the process alive (grpc-js-xds keeps the xDS client of
// every bootstrap a channel used, drills' clients included, for the process's whole life). Standard output and error
// are pipes, files or terminals, all written synchronously on Linux, so nothing printed is lost.
process.exit(code);
