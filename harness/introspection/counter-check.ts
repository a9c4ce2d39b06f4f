/**
 * Every run that classifies checks itself (issue 19, item 3): per guest and tick, five of the classifier's counts
 * beside the guest kernel's own counters read at the same pause (kernel-counters.ts), as the System.map is
 * checked against kallsyms. The pairs are the ones the known-answer tests hold to the same tolerance
 * (page-classes.e2e.test.ts):
 *
 *   free       buddy-free frames (per-CPU lists left out)   NR_FREE_PAGES
 *   file       page cache + shmem                           NR_FILE_PAGES
 *   anon       anonymous, mapped by some process (an anonymous page unmapped and not freed yet — an exiting
 *              process's pages in the kernel's free batch — is left out, as the counter leaves it out)
 *                                                           NR_ANON_MAPPED
 *   slab       PG_slab + unmarked compound pages (6.1 accounts large kmalloc as slab without PG_slab)
 *                                                           (NR_SLAB_RECLAIMABLE_B + NR_SLAB_UNRECLAIMABLE_B), in pages
 *   pagetable  user page tables                             NR_PAGETABLE
 *
 * Tolerance: |classified − kernel| ≤ max(4 frames, 0.5 % of the kernel's count), per pair. A disagreement is a
 * warning in run.json, never a refusal: the counters themselves are per-CPU sums read while paused and the slab
 * pair is approximate by nature (a compound with no owner is not always large kmalloc).
 */
import { agreementWithKernel, type PageClasses } from './page-classes.ts';

export const COUNTER_CHECKS = ['free', 'file', 'anon', 'slab', 'pagetable'] as const;
export type CounterCheckName = (typeof COUNTER_CHECKS)[number];

/** Which agreementWithKernel() row each check is. */
const ROW_OF: Record<CounterCheckName, string> = {
  free: 'free (buddy)',
  file: 'page cache + shmem',
  anon: 'anon',
  slab: 'slab + unmarked compound',
  pagetable: 'page tables',
};

export const COUNTER_TOLERANCE = 'max(4 frames, 0.5 % of the kernel counter)';

/** Allowed |classified − kernel| for a kernel count. */
export function counterTolerance(kernel: number): number {
  return Math.max(4, Math.ceil(kernel * 0.005));
}

export interface CounterPair {
  classified: number;
  kernel: number;
  /** The kernel counter(s) compared with. */
  counter: string;
  agrees: boolean;
}

export type CounterCheck = Record<CounterCheckName, CounterPair>;

/** The check of one guest's classes; undefined where its counters were not read (crafted classes in unit tests). */
export function counterCheck(classes: PageClasses): CounterCheck | undefined {
  const rows = agreementWithKernel(classes);
  if (rows.some((row) => !Number.isFinite(row.kernel))) return undefined;
  return Object.fromEntries(
    COUNTER_CHECKS.map((name) => {
      const row = rows.find((r) => r.what === ROW_OF[name]);
      if (!row) throw new Error(`agreementWithKernel() has no row '${ROW_OF[name]}'`);
      const agrees = Math.abs(row.classified - row.kernel) <= counterTolerance(row.kernel);
      return [name, { classified: row.classified, kernel: row.kernel, counter: row.counter, agrees }];
    }),
  ) as CounterCheck;
}

/** The pairs of a check that disagree, as one line each ("file: classified 120, kernel 100 (NR_FILE_PAGES)"). */
export function disagreements(check: CounterCheck): string[] {
  return COUNTER_CHECKS.filter((name) => !check[name].agrees).map(
    (name) => `${name}: classified ${check[name].classified}, kernel ${check[name].kernel} (${check[name].counter})`,
  );
}
