import type { Argv } from 'yargs';
import { loadImage } from '../../images/build.ts';
import { QemuBackend } from '../../backends/qemu/qemu-backend.ts';
import type { QemuGuest } from '../../backends/qemu/qemu-guest.ts';
import { guestOptions, workloadFromArgs } from '../options.ts';
import { terminationRequested } from '../../util/cleanup.ts';

function opsPerSecond(guest: QemuGuest): string {
  const progress = guest.console.progress();
  const last = progress.at(-1);
  const earlier = progress.at(-6) ?? progress.at(0);
  if (!last || !earlier || last.tMs === earlier.tMs) return 'no progress yet';
  return `${Math.round(((last.ops - earlier.ops) * 1000) / (last.tMs - earlier.tMs))} ops/s`;
}

export function registerGuestsCommands(cli: Argv): Argv {
  return cli.command('guests', 'boot identical guests by hand, for debugging and exploring', (y) =>
    y
      .command(
        'up',
        'boot N identical guests, print where their memory, serial logs and monitor sockets are, and keep them running until Ctrl-C',
        (u) =>
          guestOptions(u).option('for', {
            type: 'number',
            default: 0,
            describe: 'stop after this many seconds (0: run until Ctrl-C)',
          }),
        async (args) => {
          const backend = await QemuBackend.create({
            accelerator: args.accel,
            onNotice: (message) => process.stderr.write(`xme: ${message}\n`),
          });
          const image = await loadImage(args.image);
          try {
            const info = backend.info();
            process.stderr.write(
              `booting ${args.count} × ${image.manifest.kernelRelease}, ${args.memory} MiB, workload ${args.workload}, ${info.accelerator} (${info.acceleratorReason})\n`,
            );
            const guests = (await backend.provision(image, args.count, {
              memoryMiB: args.memory,
              kaslr: args.kaslr,
              workload: workloadFromArgs(args),
              bootTimeoutMs: args.bootTimeout ? args.bootTimeout * 1000 : undefined,
              onGuestBooted: (guest, ms) => process.stderr.write(`  ${guest.id} booted in ${(ms / 1000).toFixed(1)} s\n`),
            })) as QemuGuest[];
            for (const guest of guests) {
              process.stdout.write(
                `${guest.id}  pid ${guest.pid}\n    memory  ${guest.files.memory} (${guest.memoryPages} pages; file offset = guest-physical address)\n` +
                  `    serial  ${guest.files.serialLog}\n    QMP     ${guest.files.qmpSocket}\n`,
              );
            }
            process.stderr.write(args.for > 0 ? `running for ${args.for} s…\n` : 'running; Ctrl-C stops the guests and removes their files\n');
            const until = args.for > 0 ? Date.now() + args.for * 1000 : Infinity;
            let nextReport = Date.now() + 5000;
            while (Date.now() < until && !terminationRequested()) {
              await new Promise((resolve) => setTimeout(resolve, 250));
              const dead = guests.filter((guest) => !guest.alive());
              if (dead.length) {
                process.stderr.write(`xme: guest ${dead.map((g) => g.id).join(', ')} stopped: ${dead[0]!.consoleTail(1)[0] ?? ''}\n`);
                process.exitCode = 1;
                break;
              }
              if (Date.now() >= nextReport) {
                nextReport += 5000;
                process.stderr.write(`  ${guests.map((guest) => `${guest.id}: ${opsPerSecond(guest)}`).join('   ')}\n`);
              }
            }
          } finally {
            if (!terminationRequested()) await backend.close();
          }
        },
      )
      .demandCommand(1, 'name a guests action: up'),
  );
}
