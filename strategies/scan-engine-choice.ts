/** Which scan engine a content strategy uses: native C where it builds and loads, else JS over the context's hasher. */
import { nativeScanEngine } from '../harness/hashing/native-scan-engine.ts';
import { PortableScanEngine, type ScanEngine } from '../harness/hashing/scan-engine.ts';
import type { PageHasher } from '../harness/hashing/page-hasher.ts';

const portable = new WeakMap<PageHasher, ScanEngine>();

export function scanEngineFor(hasher: PageHasher): ScanEngine {
  const native = nativeScanEngine().engine;
  if (native) return native;
  let engine = portable.get(hasher);
  if (!engine) portable.set(hasher, (engine = new PortableScanEngine(hasher)));
  return engine;
}
