import type { Argv } from 'yargs';
import { buildImage, imageDir } from '../../images/build.ts';
import { checkImage, checkSystemImage } from '../../images/manifest.ts';
import { defaultImageName, recipes } from '../../images/recipes.ts';
import { isSystemImage, systemRecipes } from '../../images/system-recipes.ts';
import { buildSystemImage } from '../../images/system-build.ts';
import { XmeError } from '../../util/errors.ts';

const knownImages = () => [...Object.keys(recipes), ...Object.keys(systemRecipes)];

/** A kernel image or a system image, by name; an unknown name is an error that lists both kinds. */
function checkImageName(name: string): void {
  if (isSystemImage(name) || Object.hasOwn(recipes, name)) return;
  throw new XmeError(`unknown guest image '${name}'`, `known images: ${knownImages().join(', ')} (xme image list)`);
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}

export function registerImageCommands(cli: Argv): Argv {
  return cli.command('image', 'build, list and verify guest images (real Debian kernels + busybox initramfs, or real Debian systems)', (y) =>
    y
      .command(
        'build [names..]',
        'build guest images into the cache (a second build with the same inputs does nothing)',
        (b) =>
          b
            .positional('names', {
              type: 'string',
              array: true,
              describe: `images to build (default: ${defaultImageName}; known: ${knownImages().join(', ')})`,
            })
            .option('kernel-abi', { type: 'string', describe: 'pin a Debian kernel ABI such as 6.1.0-56 (default: the current one)' })
            .option('force', { type: 'boolean', default: false, describe: 'rebuild even if a valid image exists' })
            .option('keep-debug-deb', { type: 'boolean', default: false, describe: 'keep the large -dbg .deb in the cache' }),
        async (args) => {
          const names = args.names?.length ? args.names : [defaultImageName];
          names.forEach(checkImageName); // unknown names fail before any download
          for (const name of names) {
            if (isSystemImage(name)) {
              const result = await buildSystemImage(name, {
                kernelAbi: args.kernelAbi,
                force: args.force,
                keepDebugDeb: args.keepDebugDeb,
                onStep: (message) => process.stderr.write(`  … ${message}\n`),
              });
              const m = result.image.manifest;
              const phases = Object.entries(result.phases)
                .map(([phase, seconds]) => `${phase} ${seconds.toFixed(1)} s`)
                .join(', ');
              process.stdout.write(
                `${result.built ? 'built' : 'up to date'}: ${name} — ${m.packages.length} packages, ${m.kernel.package} ${m.kernel.version}, ` +
                  `base disk ${megabytes(m.files.baseDisk.bytes)} (tree ${megabytes(m.treeBytes)}) (${result.seconds.toFixed(1)} s${phases ? `: ${phases}` : ''})\n` +
                  `  ${result.image.dir}\n`,
              );
              continue;
            }
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
        const width = Math.max(8, ...knownImages().map((name) => name.length));
        const indent = ' '.repeat(width + 1);
        for (const recipe of Object.values(recipes)) {
          const check = await checkImage(imageDir(recipe.name));
          const state = check.ok ? `built: ${check.image.manifest.kernel.package} ${check.image.manifest.kernel.version}` : check.reason;
          process.stdout.write(`${recipe.name.padEnd(width)} ${state}\n${indent}${recipe.description}\n`);
        }
        for (const recipe of Object.values(systemRecipes)) {
          const check = await checkSystemImage(imageDir(recipe.name));
          const state = check.ok
            ? `built: system, ${check.image.manifest.packages.length} packages, ${check.image.manifest.kernel.package} ` +
              `${check.image.manifest.kernel.version}, base disk ${megabytes(check.image.manifest.files.baseDisk.bytes)}`
            : check.reason;
          process.stdout.write(`${recipe.name.padEnd(width)} ${state}\n${indent}${recipe.description}\n`);
        }
      })
      .command(
        'verify [name]',
        'check every file of a built image against the sha256 in its manifest',
        (v) => v.positional('name', { type: 'string', default: defaultImageName }),
        async (args) => {
          checkImageName(args.name);
          const check = isSystemImage(args.name) ? await checkSystemImage(imageDir(args.name)) : await checkImage(imageDir(args.name));
          if (!check.ok) throw new XmeError(`image '${args.name}': ${check.reason}`, `rebuild it: xme image build ${args.name}`);
          process.stdout.write(`image '${args.name}' is intact (${Object.keys(check.image.manifest.files).length} files, sha256 verified)\n`);
        },
      )
      .demandCommand(1, 'name an image action: build, list or verify'),
  );
}
