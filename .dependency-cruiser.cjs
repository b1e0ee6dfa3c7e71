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
