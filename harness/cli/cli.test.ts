import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { createCli } from './cli.ts';
import { UsageError, XmeError } from '../util/errors.ts';
import { projectRoot } from '../util/paths.ts';

const xme = path.join(projectRoot, 'bin', 'xme.js');

/** Parse without running handlers' side effects beyond validation. */
async function parse(argv: string[]): Promise<unknown> {
  return createCli(argv).parseAsync();
}

describe('xme command line: argument checks', () => {
  it('rejects an unknown workload, naming the choices', async () => {
    const failure = parse(['guests', 'up', '--workload', 'dance']);
    await expect(failure).rejects.toBeInstanceOf(UsageError);
    await expect(failure).rejects.toThrow(/workload.*dance.*idle.*memchurn/s);
  });

  it('rejects impossible guest counts and memory sizes', async () => {
    await expect(parse(['guests', 'up', '--count', '0'])).rejects.toThrow(/--count must be an integer from 1 to 64, got 0/);
    await expect(parse(['guests', 'up', '--count', '2.5'])).rejects.toThrow(/--count/);
    await expect(parse(['guests', 'up', '--memory', '5000'])).rejects.toThrow(/--memory .* got 5000/);
    await expect(parse(['guests', 'up', '--rate', '-3'])).rejects.toThrow(/--rate must be a non-negative number/);
  });

  it('rejects unknown commands and options', async () => {
    await expect(parse(['bogus'])).rejects.toBeInstanceOf(UsageError);
    await expect(parse(['doctor', '--frobnicate'])).rejects.toThrow(/Unknown argument/);
    await expect(parse([])).rejects.toThrow(/name a command/);
  });

  it('rejects an unknown image name before downloading anything', async () => {
    const failure = parse(['image', 'build', 'windows95']);
    await expect(failure).rejects.toBeInstanceOf(XmeError);
    await expect(failure).rejects.toThrow(/unknown guest image 'windows95'/);
  });
});

describe('xme as a program', () => {
  it('prints a one-line error naming the package when QEMU is missing, exit status 1', async () => {
    const result = await execa(process.execPath, [xme, 'guests', 'up'], { reject: false, env: { PATH: '/nonexistent' } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      'xme: error: qemu-system-x86_64 is not installed — install it with: apt-get install qemu-system-x86 (or run scripts/setup)',
    ]);
  });

  it('prints a one-line error saying how to build a missing image', async () => {
    const result = await execa(process.execPath, [xme, 'guests', 'up', '--image', 'generic'], {
      reject: false,
      env: { XME_CACHE: '/nonexistent/xme-cache' },
    });
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim()).toBe("xme: error: guest image 'generic' is not usable: not built — build it with: xme image build generic");
  });

  it('exits with status 2 and points at --help on a usage error', async () => {
    const result = await execa(process.execPath, [xme, 'guests', 'up', '--workload', 'dance'], { reject: false });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/\(see: xme guests up --help\)$/);
  });

  it('doctor reports a verdict per backend from real checks', async () => {
    const result = await execa(process.execPath, [xme, 'doctor', '--json']);
    const report = JSON.parse(result.stdout) as { checks: { name: string; status: string }[]; verdicts: { backend: string; ready: boolean }[] };
    expect(report.verdicts.map((v) => v.backend)).toEqual(['qemu', 'xen']);
    // scripts/setup installed QEMU on this machine, so the QEMU backend must be ready and its check ok.
    expect(report.checks.find((c) => c.name === 'QEMU')?.status).toBe('ok');
    expect(report.verdicts[0]!.ready).toBe(true);
  });
});
