/**
 * The layers of xme, bottom to top (docs/architecture.md, "Layers"). A file may import its own layer and the
 * layers below it, never one above: so no folder imports a folder that imports it back, and a change in a
 * higher layer (the report, the command line) never reaches a lower one (a backend, a strategy).
 * `npm run lint` checks it with dependency-cruiser (tests are outside the layers: they may import anything).
 */
const LAYERS = [
  ['harness/vocabulary.ts', 'harness/util', 'harness/arch'],
  ['harness/host', 'harness/images', 'harness/workloads', 'harness/hashing'],
  ['harness/backends'],
  ['harness/introspection', 'harness/sharing', 'harness/doctor.ts'],
  ['strategies'],
  ['harness/scenario'],
  ['harness/results'],
  ['harness/experiment', 'harness/report'],
  ['harness/compare', 'harness/suite', 'harness/recording', 'harness/testing'],
  ['harness/cli', 'bench'],
];

const pattern = (paths) => `^(${paths.map((p) => p.replace(/[.]/g, '\\.')).join('|')})(/|$)`;
const TESTS = '\\.test\\.ts$';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'files that import each other in a loop', from: { pathNot: TESTS }, to: { circular: true } },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `layer-${i + 1}-imports-upward`,
      severity: 'error',
      comment: `${layer.join(', ')} may import only ${i === 0 ? 'its own layer' : 'its own layer and those below'}, not ${LAYERS.slice(i + 1).flat().join(', ')}`,
      from: { path: pattern(layer), pathNot: TESTS },
      to: { path: pattern(LAYERS.slice(i + 1).flat()) },
    })),
    {
      name: 'not-in-a-layer',
      severity: 'error',
      comment: 'every source folder has a layer: add a new folder to LAYERS in .dependency-cruiser.cjs',
      from: { path: '^(harness|strategies|bench)/', pathNot: [TESTS, pattern(LAYERS.flat())] },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
