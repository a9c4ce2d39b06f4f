import type { PageRef } from '../harness/vocabulary.ts';

/**
 * Partition pages into classes of identical bytes (each class compared against its first page).
 * Returns the classes with at least two pages and the number of bytes compared.
 */
export function identicalClasses(pages: { ref: PageRef; bytes: Buffer }[]): { classes: PageRef[][]; bytesCompared: number } {
  const classes: { reference: Buffer; members: PageRef[] }[] = [];
  let bytesCompared = 0;
  for (const page of pages) {
    let placed = false;
    for (const candidate of classes) {
      bytesCompared += page.bytes.length;
      if (page.bytes.equals(candidate.reference)) {
        candidate.members.push(page.ref);
        placed = true;
        break;
      }
    }
    if (!placed) classes.push({ reference: page.bytes, members: [page.ref] });
  }
  return { classes: classes.filter((c) => c.members.length >= 2).map((c) => c.members), bytesCompared };
}
