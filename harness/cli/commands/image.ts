import type { Argv } from 'yargs';
import { buildImage, imageDir } from '../../images/build.ts';
import { checkImage } from '../../images/manifest.ts';
import { defaultImageName, recipeByName, recipes } from '../../images/recipes.ts';
import { XmeError } from '../../util/errors.ts';

export function registerImageCommands(cli: Argv): Argv {
  return cli.command('image', 'build, list and verify guest images (real Debian kernels + busybox initramfs)', (y) =>
    y
      .command(
        'build [names..]',
        'build guest images into the cache (a second build with the same inputs does nothing)',
        (b) =>
          b
            .positional('names', { type: 'string', array: true, describe: `images to build (default: ${defaultImageName}; known: ${Object.keys(recipes).join(', ')})` })
            .option('kernel-abi', { type: 'string', describe: 'pin a Debian kernel ABI such as 6.1.0-56 (default: the current one)' })
            .option('force', { type: 'boolean', default: false, describe: 'rebuild even if a valid image exists' })
            .option('keep-debug-deb', { type: 'boolean', default: false, describe: 'keep the large -dbg .deb in the cache' }),
        async (args) => {
          const names = args.names?.length ? args.names : [defaultImageName];
          names.forEach((name) => recipeByName(name)); // unknown names fail before any download
          for (const name of names) {
            const result = await buildImage(name, {
              kernelAbi: args.kernelAbi,
              force: args.force,
              keepDebugDeb: args.keepDebugDeb,
              onStep: (message) => process.stderr.write(`  … ${message}\n`),
            });
            const m = result.image.manifest;
            process.stdout.write(
              `${result.built ? 'built' : 'up to date'}: ${name} — ${m.kernel.package} ${m.kernel.version}, ` +
                `System.map from ${m.debugPackage.package} (${result.seconds.toFixed(1)} s)\n  ${result.image.dir}\n`,
            );
          }
        },
      )
      .command('list', 'list known images and whether they are built and intact', {}, async () => {
        for (const recipe of Object.values(recipes)) {
          const check = await checkImage(imageDir(recipe.name));
          const state = check.ok ? `built: ${check.image.manifest.kernel.package} ${check.image.manifest.kernel.version}` : check.reason;
          process.stdout.write(`${recipe.name.padEnd(8)} ${state}\n         ${recipe.description}\n`);
        }
      })
      .command(
        'verify [name]',
        'check every file of a built image against the sha256 in its manifest',
        (v) => v.positional('name', { type: 'string', default: defaultImageName }),
        async (args) => {
          recipeByName(args.name);
          const check = await checkImage(imageDir(args.name));
          if (!check.ok) throw new XmeError(`image '${args.name}': ${check.reason}`, `rebuild it: xme image build ${args.name}`);
          process.stdout.write(`image '${args.name}' is intact (${Object.keys(check.image.manifest.files).length} files, sha256 verified)\n`);
        },
      )
      .demandCommand(1, 'name an image action: build, list or verify'),
  );
}
