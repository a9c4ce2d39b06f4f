/** Which scan kernel a content strategy uses: native C where it builds and loads, else JS over the context's hasher. */
import { nativeScanKernel } from '../harness/hashing/native-scan-kernel.ts';
import { PortableScanKernel, type ScanKernel } from '../harness/hashing/scan-kernel.ts';
import type { PageHasher } from '../harness/hashing/page-hasher.ts';

const portable = new WeakMap<PageHasher, ScanKernel>();

export function scanKernelFor(hasher: PageHasher): ScanKernel {
  const native = nativeScanKernel().kernel;
  if (native) return native;
  let kernel = portable.get(hasher);
  if (!kernel) portable.set(hasher, (kernel = new PortableScanKernel(hasher)));
  return kernel;
}
