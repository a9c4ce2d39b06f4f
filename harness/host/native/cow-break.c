/*
 * The cost of one KSM copy-on-write break on this host, by the method of the kernel's own selftest
 * (tools/testing/selftests/mm/ksm_tests.c, test -C "KSM COW time"), written anew for xme:
 *
 *   1. map 2 × PAIRS private anonymous pages (no huge pages) and fault them all in;
 *   2. time a one-byte write to the first page of each pair while no page is merged (the baseline: a store
 *      to a present, writable page takes no fault);
 *   3. give each pair bytes of its own (both pages alike, unlike every other pair, so each pair merges into a
 *      KSM page of its own and no stable-node chain forms), madvise(MADV_MERGEABLE), and wait until ksmd has
 *      made at least two more full scans (KSM merges a page on the second scan that sees it unchanged) and the
 *      pages are merged (/proc/self/ksm_merging_pages);
 *   4. time the same one-byte writes again: each one now takes a write-protect fault and breaks CoW (a new
 *      page, a 4 KiB copy, the page table updated), counted by the kernel in /proc/vmstat cow_ksm.
 *
 * Both timings use CLOCK_THREAD_CPUTIME_ID (the fault is handled on the writing thread, in its system
 * time) and CLOCK_MONOTONIC_RAW (the selftest's clock). The caller (harness/host/cow-break.ts) holds the
 * host's KSM through a KsmSession (run=1 and the scan rate): this program writes no KSM knob, it only
 * reads full_scans. Output: one JSON object on stdout; exit status 2 with a message on stderr on failure.
 *
 * usage: cow-break PAIRS TIMEOUT_S [KSM_SYSFS_DIR]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *sysfs = "/sys/kernel/mm/ksm";

static void fail(const char *what) {
  fprintf(stderr, "cow-break: %s: %s\n", what, errno ? strerror(errno) : "failed");
  exit(2);
}

static int64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0) fail("clock_gettime");
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A number from a one-number file (sysfs, procfs); -1 where the file is absent. */
static long read_number(const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) return -1;
  long value = -1;
  if (fscanf(f, "%ld", &value) != 1) value = -1;
  fclose(f);
  return value;
}

static long full_scans(void) {
  char file[512];
  snprintf(file, sizeof file, "%s/full_scans", sysfs);
  long value = read_number(file);
  if (value < 0) fail("reading full_scans");
  return value;
}

/* cow_ksm in /proc/vmstat (Linux 6.4+): KSM CoW breaks, host-wide; -1 where the kernel has no such line. */
static long cow_ksm(void) {
  FILE *f = fopen("/proc/vmstat", "r");
  if (!f) return -1;
  char name[128];
  long value;
  long found = -1;
  while (fscanf(f, "%127s %ld", name, &value) == 2) {
    if (strcmp(name, "cow_ksm") == 0) {
      found = value;
      break;
    }
  }
  fclose(f);
  return found;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* One byte written to the first page of every pair; thread CPU and wall time of the loop. */
static void write_firsts(volatile unsigned char *base, long pairs, long page, unsigned char value, int64_t *cpu_ns, int64_t *wall_ns) {
  int64_t wall0 = clock_ns(CLOCK_MONOTONIC_RAW);
  int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  for (long i = 0; i < pairs; i++) base[2 * i * page] = value;
  *cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  *wall_ns = clock_ns(CLOCK_MONOTONIC_RAW) - wall0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: cow-break PAIRS TIMEOUT_S [KSM_SYSFS_DIR]\n");
    return 2;
  }
  long pairs = atol(argv[1]);
  long timeout_s = atol(argv[2]);
  if (argc > 3) sysfs = argv[3];
  if (pairs < 1 || timeout_s < 1) {
    fprintf(stderr, "cow-break: PAIRS and TIMEOUT_S must be positive\n");
    return 2;
  }
  long page = sysconf(_SC_PAGESIZE);
  size_t bytes = (size_t)(2 * pairs) * (size_t)page;
  unsigned char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) fail("mmap");
  /* KSM merges small pages: a huge page would be split first, and timed writes would then hit other costs. */
  if (madvise(base, bytes, MADV_NOHUGEPAGE) != 0) fail("madvise(MADV_NOHUGEPAGE)");
  memset(base, '*', bytes);

  int64_t unmerged_cpu, unmerged_wall;
  write_firsts(base, pairs, page, '-', &unmerged_cpu, &unmerged_wall);

  /* Each pair alike, every pair unlike the others: its number in the first bytes of both of its pages. */
  for (long i = 0; i < pairs; i++) {
    for (int k = 0; k < 2; k++) {
      unsigned char *p = base + (2 * i + k) * page;
      memset(p, '+', (size_t)page);
      memcpy(p, &i, sizeof i);
    }
  }
  long cow_before_merge = cow_ksm();
  if (madvise(base, bytes, MADV_MERGEABLE) != 0) fail("madvise(MADV_MERGEABLE) (a kernel without CONFIG_KSM?)");
  int64_t wait0 = clock_ns(CLOCK_MONOTONIC_RAW);
  long scans0 = full_scans();
  long merging = -1;
  long waited_scans = 0;
  for (;;) {
    long scans = full_scans();
    waited_scans = scans - scans0;
    merging = read_number("/proc/self/ksm_merging_pages");
    /* At least two full scans; then every page merged (where the kernel says so), or give up at the timeout. */
    if (waited_scans >= 2 && (merging < 0 || merging >= 2 * pairs)) break;
    if (clock_ns(CLOCK_MONOTONIC_RAW) - wait0 > timeout_s * 1000000000LL) {
      fprintf(stderr, "cow-break: after %ld s, %ld full scans: %ld of %ld pages merged (is ksmd running? run=1)\n", timeout_s, waited_scans, merging,
              2 * pairs);
      return 3;
    }
    sleep_ms(2);
  }
  int64_t wait_ns = clock_ns(CLOCK_MONOTONIC_RAW) - wait0;

  long cow0 = cow_ksm();
  int64_t merged_cpu, merged_wall;
  write_firsts(base, pairs, page, '-', &merged_cpu, &merged_wall);
  long cow1 = cow_ksm();
  long merging_after = read_number("/proc/self/ksm_merging_pages");
  munmap(base, bytes);

  printf("{\"pairs\":%ld,\"page_size\":%ld,\"unmerged_cpu_ns\":%lld,\"unmerged_wall_ns\":%lld,\"merged_cpu_ns\":%lld,\"merged_wall_ns\":%lld,"
         "\"cow_ksm_breaks\":%ld,\"cow_ksm_during_merge\":%ld,\"merging_pages_before\":%ld,\"merging_pages_after\":%ld,\"full_scans_waited\":%ld,"
         "\"wait_ms\":%.1f}\n",
         pairs, page, (long long)unmerged_cpu, (long long)unmerged_wall, (long long)merged_cpu, (long long)merged_wall,
         cow0 >= 0 && cow1 >= 0 ? cow1 - cow0 : -1L, cow0 >= 0 && cow_before_merge >= 0 ? cow0 - cow_before_merge : -1L, merging,
         merging_after, waited_scans, wait_ns / 1e6);
  return 0;
}
