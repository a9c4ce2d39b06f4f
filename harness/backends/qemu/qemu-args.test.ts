import { describe, expect, it } from 'vitest';
import { qemuArguments, type GuestLaunch, type SystemLaunch } from './qemu-args.ts';
import { kernelCommandLine, systemKernelCommandLine, workloadCommandLine } from '../guest-command-line.ts';

const launch: GuestLaunch = {
  memoryMiB: 256,
  ram: 'shared-file',
  memoryFile: '/dev/shm/xme-1-a/g0.ram',
  qmpSocket: '/dev/shm/xme-1-a/g0.qmp',
  serialLog: '/dev/shm/xme-1-a/g0.serial.log',
  kernel: '/cache/vmlinuz',
  initramfs: '/cache/initramfs.cpio',
  accelerator: { accelerator: 'tcg', cpuModel: 'qemu64', reason: 'test' },
  kaslr: false,
  workload: { name: 'memchurn', params: { mib: 32, rate: 500 } },
};

function valueAfter(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1]!] : []));
}

describe('QEMU command line', () => {
  it('backs guest RAM with the shared file the harness maps, of the guest size', () => {
    const args = qemuArguments(launch);
    expect(valueAfter(args, '-object')).toEqual(['memory-backend-file,id=xme-ram,size=256M,mem-path=/dev/shm/xme-1-a/g0.ram,share=on,merge=off']);
    expect(valueAfter(args, '-machine')).toEqual(['pc,memory-backend=xme-ram']);
    expect(valueAfter(args, '-m')).toEqual(['256M']);
  });

  it('gives KSM runs anonymous RAM marked mergeable, and no RAM file', () => {
    const args = qemuArguments({ ...launch, ram: 'anonymous-mergeable' });
    expect(valueAfter(args, '-object')).toEqual(['memory-backend-ram,id=xme-ram,size=256M,merge=on']);
    expect(args.join(' ')).not.toContain('g0.ram');
    expect(valueAfter(args, '-machine')).toEqual(['pc,memory-backend=xme-ram']);
  });

  it('gives a guest its own CPU model when the scenario names one', () => {
    expect(valueAfter(qemuArguments({ ...launch, cpuModel: 'Nehalem' }), '-cpu')).toEqual(['Nehalem']);
  });

  it('uses the chosen accelerator and one explicit CPU model', () => {
    const args = qemuArguments(launch);
    expect(valueAfter(args, '-accel')).toEqual(['tcg']);
    expect(valueAfter(args, '-cpu')).toEqual(['qemu64']);
    const kvm = qemuArguments({ ...launch, accelerator: { accelerator: 'kvm', cpuModel: 'host', reason: 'probe' } });
    expect(valueAfter(kvm, '-accel')).toEqual(['kvm']);
    expect(valueAfter(kvm, '-cpu')).toEqual(['host']);
  });

  it('ends QEMU when the guest kernel panics and keeps no default devices', () => {
    const args = qemuArguments(launch);
    expect(args).toContain('-no-reboot');
    expect(args).toContain('-nodefaults');
    expect(kernelCommandLine(launch)).toMatch(/(^| )panic=-1( |$)/);
  });

  it('switches KASLR on the kernel command line', () => {
    expect(kernelCommandLine(launch).split(' ')).toContain('nokaslr');
    expect(kernelCommandLine({ ...launch, kaslr: true }).split(' ')).not.toContain('nokaslr');
  });

  it('passes the workload and its parameters to the guest /init', () => {
    expect(workloadCommandLine(launch.workload)).toEqual(['xme.workload=memchurn', 'xme.args=mib=32,rate=500']);
    expect(workloadCommandLine({ name: 'idle' })).toEqual(['xme.workload=idle']);
    expect(() => workloadCommandLine({ name: 'cpu', params: { rate: -1 } })).toThrow(/rate must be a non-negative integer/);
    expect(() => workloadCommandLine({ name: 'cpu', params: { rate: 1.5 } })).toThrow(/rate/);
  });

  it('boots a system image from its overlay (virtio-blk), its own initrd and command line, no NIC, the guest agent and the workload port', () => {
    const { initramfs: _, workload: __, ...common } = launch as Extract<GuestLaunch, { initramfs: string }>;
    const system: SystemLaunch = {
      ...common,
      kaslr: true,
      boot: 'system',
      initrd: '/cache/debian-system/initrd.img',
      disk: '/dev/shm/xme-1-a/g0.qcow2',
      imageCommandLine: 'root=/dev/vda rw console=ttyS0',
      agentSocket: '/dev/shm/xme-1-a/g0.qga',
      workloadLog: '/dev/shm/xme-1-a/g0.workload.log',
    };
    const args = qemuArguments(system);
    expect(valueAfter(args, '-initrd')).toEqual(['/cache/debian-system/initrd.img']);
    expect(valueAfter(args, '-append')).toEqual(['root=/dev/vda rw console=ttyS0 panic=-1 quiet no_timer_check kaslr']);
    expect(valueAfter(args, '-drive')).toEqual(['file=/dev/shm/xme-1-a/g0.qcow2,format=qcow2,if=virtio,cache=unsafe']);
    expect(valueAfter(args, '-nic')).toEqual(['none']);
    expect(valueAfter(args, '-chardev')).toEqual([
      'socket,path=/dev/shm/xme-1-a/g0.qga,server=on,wait=off,id=qga0',
      'file,path=/dev/shm/xme-1-a/g0.workload.log,id=xmewl0',
    ]);
    expect(valueAfter(args, '-device')).toEqual([
      'virtio-serial',
      'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      'virtserialport,chardev=xmewl0,name=xme.workload',
    ]);
    // The same RAM, CPU and console options as a kernel image's guest.
    for (const flag of ['-object', '-machine', '-cpu', '-serial', '-qmp', '-m'])
      expect(valueAfter(args, flag)).toEqual(valueAfter(qemuArguments(launch), flag));
    expect(valueAfter(qemuArguments({ ...system, ram: 'anonymous-mergeable' }), '-object')).toEqual(['memory-backend-ram,id=xme-ram,size=256M,merge=on']);
    expect(systemKernelCommandLine('root=/dev/vda rw console=ttyS0', { kaslr: false }).split(' ')).toContain('nokaslr');
    expect(args.join(' ')).not.toContain('xme.workload=');
  });
});
