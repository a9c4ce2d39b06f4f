/**
 * Where two classifications of the same guest memory disagree, frame by frame, by what each frame's class
 * says (PageClasses.classOf: the file by address_space, inode and key fields; the cache and module by name),
 * not by table indexes, which an incremental classifier keeps from tick to tick and a fresh one numbers anew.
 * For tests: an incremental classification must equal one from scratch.
 */
import type { PageClass, PageClasses } from '../introspection/page-classes.ts';

function describeClass(c: PageClass): string {
  if (c.kind === 'pagecache' || c.kind === 'shmem') {
    const { file } = c;
    return JSON.stringify({
      ...c,
      file: [
        file.mapping.toString(16),
        file.inode.toString(16),
        file.ino,
        file.generation,
        file.size,
        file.mtime,
        file.ctime,
        file.fsType,
        file.deviceName,
        file.device,
      ],
    });
  }
  return JSON.stringify(c);
}

/** The first `limit` frames whose classes differ (frame: one | other), and how many differ in all. */
export function classesDiff(one: PageClasses, other: PageClasses, limit = 5): { differing: number; examples: string[] } {
  if (one.frames !== other.frames) return { differing: Math.max(one.frames, other.frames), examples: [`${one.frames} frames against ${other.frames}`] };
  let differing = 0;
  const examples: string[] = [];
  for (let frame = 0; frame < one.frames; frame++) {
    const kindsDiffer =
      one.kind[frame] !== other.kind[frame] ||
      one.bits[frame] !== other.bits[frame] ||
      one.order[frame] !== other.order[frame] ||
      one.head[frame] !== other.head[frame];
    // Same kind and columns: compare what the tables say (cheap enough for a test over every frame).
    const a = kindsDiffer ? '' : describeClass(one.classOf(frame));
    const b = kindsDiffer ? ' ' : describeClass(other.classOf(frame));
    if (a === b) continue;
    differing++;
    if (examples.length < limit) examples.push(`frame 0x${frame.toString(16)}: ${describeClass(one.classOf(frame))} | ${describeClass(other.classOf(frame))}`);
  }
  return { differing, examples };
}
