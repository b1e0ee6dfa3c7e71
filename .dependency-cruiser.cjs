/**
 * The house rules of src/ (see the end of ../shared/DESIGN.md), checked by
 * `npm run lint` in CI. Type-only imports count: a circle of types is still a
 * circle for whoever reads the code.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import circles, type-only ones included.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'server-stays-server',
      severity: 'error',
      comment: 'src/ is the server: it does not import tests, the console, the portal, the clients or deploy files.',
      from: { path: '^src/' },
      to: { path: '^(test|console|portal|clients|deploy|bench|examples)/' },
    },
    {
      name: 'domain-has-no-transport',
      severity: 'error',
      comment: 'Domain logic knows nothing of protobuf, RPCs or HTTP.',
      from: { path: '^src/domain/' },
      to: { path: '^(gen/|src/(rpc|http)/)|@connectrpc' },
    },
    {
      name: 'transports-take-deps-not-app',
      severity: 'error',
      comment: 'rpc/ and http/ receive the collaborators they use (an explicit deps object), never the App that wires them.',
      from: { path: '^src/(rpc|http)/' },
      to: { path: '^src/(app|server)\\.ts$' },
    },
    {
      name: 'db-is-below-domain',
      severity: 'error',
      comment: 'db/ (entities, migrations, the change feed, transactions) knows nothing of the floors above it: domain/ uses db/, never the other way.',
      from: { path: '^src/db/' },
      to: { path: '^src/(domain|verify|auth|tokens|webhooks|health|rpc|http)/|^src/(app|server|cli)\\.ts$' },
    },
    {
      name: 'domain-is-below-the-services',
      severity: 'error',
      comment: 'domain/ is used by verify/, auth/, tokens/, webhooks/ and the transports; it uses none of them.',
      from: { path: '^src/domain/' },
      to: { path: '^src/(verify|auth|tokens|webhooks|health)/|^src/(app|server|cli)\\.ts$' },
    },
    {
      name: 'verify-uses-no-management',
      severity: 'error',
      comment:
        'The verify path shares only rules with management (key state, permissions, limits, errors, principal, validation) and the two event sinks it feeds (webhook events of used-up keys, security events of revoked keys in use), never a management module.',
      from: { path: '^src/verify/' },
      to: { path: '^src/domain/(keys|scopes|workspaces|sdk-keys|portal-sessions|audit|usage|grants|changes)\\.ts$|^src/(rpc|http|tokens|auth|webhooks)/' },
    },
    {
      name: 'no-orphans-in-src',
      severity: 'warn',
      comment: 'A module nothing imports is dead code (entry points excepted).',
      from: { orphan: true, path: '^src/', pathNot: '^src/(cli|server)\\.ts$|^src/db/migrations/' },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
