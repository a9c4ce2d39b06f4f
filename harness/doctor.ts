/**
 * `xme doctor`: what this machine offers each backend, checked for real (versions asked of the tools,
 * libraries loaded, a KVM probe run), and a verdict per backend.
 */
import fs from 'node:fs';
import koffi from 'koffi';
import { findOnPath, toolPackages } from './util/tools.ts';
import { chooseAccelerator } from './backends/qemu/accelerator.ts';
import { qemuVersion } from './backends/qemu/qemu-backend.ts';
import { recipes } from './images/recipes.ts';
import { checkImage } from './images/manifest.ts';
import { imageDir } from './images/build.ts';
import { runtimeBaseDir } from './util/paths.ts';
import { errorMessage } from './util/errors.ts';
import { loadXenLibraries } from './backends/xen/libxen.ts';

export type CheckStatus = 'ok' | 'warn' | 'missing';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface Verdict {
  backend: string;
  ready: boolean;
  detail: string;
}

export interface DoctorReport {
  checks: Check[];
  verdicts: Verdict[];
}

/** The first of these sonames that loads, and its handle. */
function loadFirst(sonames: string[]): { soname: string; lib: ReturnType<typeof koffi.load> } | undefined {
  for (const soname of sonames) {
    try {
      return { soname, lib: koffi.load(soname) };
    } catch {
      // try the next one
    }
  }
  return undefined;
}

function xxhashCheck(): Check {
  const found = loadFirst(['libxxhash.so.0']);
  if (!found) return { name: 'libxxhash', status: 'warn', detail: 'not found: content hashing falls back to WASM (apt-get install libxxhash0)' };
  const versionNumber = found.lib.func('unsigned int XXH_versionNumber(void)') as () => number;
  const v = versionNumber();
  return { name: 'libxxhash', status: 'ok', detail: `${found.soname} ${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}` };
}

function xenChecks(): Check[] {
  const privcmd = fs.existsSync('/dev/xen/privcmd');
  // The backend's own loader: the same supported-ABI rule, so doctor cannot say "ok" for a library it refuses.
  let library: Check;
  try {
    library = { name: 'libxenctrl', status: 'ok', detail: `${loadXenLibraries().soname} loads` };
  } catch (error) {
    library = { name: 'libxenctrl', status: 'missing', detail: errorMessage(error) };
  }
  return [
    {
      name: 'Xen privcmd',
      status: privcmd ? 'ok' : 'missing',
      detail: privcmd ? '/dev/xen/privcmd present (running in a Xen dom0)' : 'no /dev/xen/privcmd: this is not a Xen dom0',
    },
    library,
  ];
}

function ksmCheck(): Check {
  const dir = '/sys/kernel/mm/ksm';
  if (!fs.existsSync(`${dir}/run`)) return { name: 'KSM', status: 'missing', detail: 'kernel without KSM (/sys/kernel/mm/ksm)' };
  const run = fs.readFileSync(`${dir}/run`, 'utf8').trim();
  let writable = true;
  try {
    fs.accessSync(`${dir}/run`, fs.constants.W_OK);
  } catch {
    writable = false;
  }
  return {
    name: 'KSM',
    status: writable ? 'ok' : 'warn',
    detail: `run=${run}${writable ? ', writable' : ', not writable (needs root)'}`,
  };
}

function toolCheck(tool: keyof typeof toolPackages, purpose: string): Check {
  const found = findOnPath(tool);
  return found ? { name: tool, status: 'ok', detail: found } : { name: tool, status: 'missing', detail: `${purpose}: apt-get install ${toolPackages[tool]}` };
}

function runtimeCheck(): Check {
  const dir = runtimeBaseDir();
  const stats = fs.statfsSync(dir);
  const freeMiB = Math.floor((stats.bavail * stats.bsize) / 2 ** 20);
  return {
    name: 'guest RAM dir',
    status: freeMiB > 1024 ? 'ok' : 'warn',
    detail: `${dir}: ${freeMiB} MiB free (each guest needs its memory size here)`,
  };
}

export async function runDoctor(): Promise<DoctorReport> {
  const checks: Check[] = [];
  const qemu = findOnPath('qemu-system-x86_64');
  let accelerator = '';
  if (qemu) {
    checks.push({ name: 'QEMU', status: 'ok', detail: `qemu-system-x86_64 ${await qemuVersion(qemu)} (${qemu})` });
    const choice = await chooseAccelerator(qemu, 'auto');
    accelerator = choice.accelerator;
    checks.push({ name: 'accelerator', status: 'ok', detail: `${choice.accelerator}, -cpu ${choice.cpuModel} — ${choice.reason}` });
  } else {
    checks.push({ name: 'QEMU', status: 'missing', detail: 'apt-get install qemu-system-x86' });
  }
  checks.push(toolCheck('gcc', 'needed to build guest images'));
  checks.push(toolCheck('dpkg-deb', 'needed to build guest images'));
  checks.push(toolCheck('apt-get', 'needed to download kernel packages'));
  checks.push(xxhashCheck(), ksmCheck(), runtimeCheck());
  const images: string[] = [];
  for (const name of Object.keys(recipes)) {
    const check = await checkImage(imageDir(name));
    checks.push({
      name: `image ${name}`,
      status: check.ok ? 'ok' : 'warn',
      detail: check.ok ? `${check.image.manifest.kernel.package} ${check.image.manifest.kernel.version}` : `${check.reason} (xme image build ${name})`,
    });
    if (check.ok) images.push(name);
  }
  const xen = xenChecks();
  checks.push(...xen);

  const missingForQemu = checks.filter((c) => ['QEMU', 'gcc', 'dpkg-deb', 'apt-get'].includes(c.name) && c.status === 'missing');
  const verdicts: Verdict[] = [
    {
      backend: 'qemu',
      ready: missingForQemu.length === 0,
      detail: missingForQemu.length
        ? `missing: ${missingForQemu.map((c) => c.name).join(', ')} (run scripts/setup)`
        : `ready (${accelerator}); ${images.length ? `images built: ${images.join(', ')}` : 'no image built yet: xme image build'}`,
    },
    {
      backend: 'xen',
      ready: xen.every((c) => c.status === 'ok'),
      detail: xen.every((c) => c.status === 'ok')
        ? 'ready: running in a Xen dom0 with libxenctrl'
        : `not available here (${xen
            .filter((c) => c.status !== 'ok')
            .map((c) => c.detail)
            .join('; ')})`,
    },
  ];
  return { checks, verdicts };
}
