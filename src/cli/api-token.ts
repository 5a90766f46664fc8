/**
 * `meshfed api token create|list|revoke`: named API tokens with roles, kept hashed in the state dir
 * (STATE_DIR/api-tokens.json). A running `meshfed serve` on that state dir picks changes up on its next request.
 */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { API_ROLES, apiRoleSchema } from '../model/api-roles.js';
import { ApiTokenStore } from '../store/api-tokens.js';
import { DEFAULT_STATE_DIR } from './ca.js';
import { UsageError } from './errors.js';
import { dataFormat, print, table } from './output.js';

function openStore(command: Command): ApiTokenStore {
  const opts = command.optsWithGlobals<{ stateDir?: string }>();
  return ApiTokenStore.open(resolve(opts.stateDir ?? process.env.MESHFED_STATE_DIR ?? DEFAULT_STATE_DIR));
}

const outputOption = (): Option => new Option('-o, --output <format>', 'output format: text|json|yaml').default('text');

function tokenCommand(): Command {
  const token = new Command('token').description("named API tokens with roles (viewer: read; operator: virtual destinations and drills; admin: everything); only their SHA-256 is stored");
  token
    .command('create')
    .description('make a token and print it once: it cannot be shown again')
    .requiredOption('--name <name>', 'what the token is for (a DNS label: ci, dashboard…); the audit log names callers by it')
    .addOption(new Option('--role <role>', 'what it may do').choices([...API_ROLES]).makeOptionMandatory())
    .addOption(outputOption())
    .action((opts: { name: string; role: string; output: string }, command: Command) => {
      const format = dataFormat(opts.output);
      const role = apiRoleSchema.safeParse(opts.role);
      if (!role.success) throw new UsageError(`--role ${opts.role}: use one of ${API_ROLES.join(', ')}`);
      const store = openStore(command);
      const { token: secret, entry } = store.create(opts.name, role.data);
      print(format, { ...entry, token: secret }, () => `${secret}\n`);
      process.stderr.write(`token ${entry.name} (${entry.role}) created in ${store.path}; it is not shown again. Use it with MESHFED_API_TOKEN or --token-file.\n`);
    });
  token
    .command('list')
    .description('the named tokens: name, role, created (never the tokens)')
    .addOption(outputOption())
    .action((opts: { output: string }, command: Command) => {
      const format = dataFormat(opts.output);
      const tokens = openStore(command).list();
      print(format, { tokens }, () => (tokens.length === 0 ? 'no named tokens\n' : table(['NAME', 'ROLE', 'CREATED'], tokens.map((t) => [t.name, t.role, t.createdAt]))));
    });
  token
    .command('revoke')
    .description('remove a token: a running manager refuses it from its next request on')
    .argument('<name>', 'the token to revoke')
    .action((name: string, _opts: unknown, command: Command) => {
      const store = openStore(command);
      if (!store.revoke(name)) throw new UsageError(`no token named ${name.slice(0, 63)} in ${store.path}`);
      process.stdout.write(`token ${name} revoked\n`);
    });
  return token;
}

export function apiCommand(): Command {
  return new Command('api')
    .description("access to the manager's REST API")
    .option('--state-dir <dir>', `the manager's state dir (env MESHFED_STATE_DIR, default ${DEFAULT_STATE_DIR})`)
    .addCommand(tokenCommand());
}
