/*
 * The hardware ceiling the content pass is measured against (npm run bench builds and runs this in the same
 * run): XXH3 (Debian's libxxhash, the hash xme uses) of each 4 KiB page, and memcmp of page pairs, on one
 * core, in CPU time of this thread. Two kinds of memory:
 *   ceiling buffer <MiB> <passes>           a heap buffer (the figure of the table)
 *   ceiling files <passes> <file>...        every page resident in these guest RAM files (mmap, mincore), the
 *                                           very memory the content pass reads
 *   ceiling compare <passes> <pages> (<file> <first page>)...
 *                                           memcmp of page k of each guest's range with the first guest's page k,
 *                                           k < pages, stopping at the first guest that differs: what the
 *                                           semantic strategy compares, on the very pages it compares
 * Prints one JSON line: {"xxh3_gbps":…, "memcmp_gbps":… (buffer mode only; 0 on files), "bytes":…}. Best
 * pass of <passes>: the least disturbed on a shared machine.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t XXH3_64bits(const void *input, size_t length);
#define PAGE 4096

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: ceiling buffer <MiB> <passes> | ceiling files <passes> <file>...\n"); return 2; }
  const uint8_t **pages = NULL;
  uint8_t *copies = NULL; /* buffer mode: a copy of the buffer, for memcmp */
  size_t count = 0, passes;
  if (strcmp(argv[1], "buffer") == 0 && argc == 4) {
    size_t bytes = (size_t)atol(argv[2]) << 20;
    passes = (size_t)atol(argv[3]);
    uint8_t *buffer = aligned_alloc(PAGE, bytes);
    for (size_t i = 0; i < bytes; i += 8) *(uint64_t *)(buffer + i) = (i * 2654435761u) ^ (i >> 12);
    count = bytes / PAGE;
    pages = malloc(count * sizeof *pages);
    for (size_t i = 0; i < count; i++) pages[i] = buffer + i * PAGE;
    copies = aligned_alloc(PAGE, bytes);
    memcpy(copies, buffer, bytes);
  } else if (strcmp(argv[1], "files") == 0) {
    passes = (size_t)atol(argv[2]);
    for (int f = 3; f < argc; f++) {
      int fd = open(argv[f], O_RDONLY);
      struct stat st;
      if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[f]); return 1; }
      uint8_t *map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) { perror("mmap"); return 1; }
      size_t n = st.st_size / PAGE;
      unsigned char *resident = malloc(n);
      mincore(map, st.st_size, resident);
      pages = realloc(pages, (count + n) * sizeof *pages);
      for (size_t i = 0; i < n; i++) if (resident[i] & 1) pages[count++] = map + i * PAGE;
      free(resident);
    }
  } else if (strcmp(argv[1], "compare") == 0 && argc >= 6 && argc % 2 == 0) {
    passes = (size_t)atol(argv[2]);
    size_t span = (size_t)atol(argv[3]);
    int guests = (argc - 4) / 2;
    const uint8_t **starts = malloc(guests * sizeof *starts);
    for (int g = 0; g < guests; g++) {
      int fd = open(argv[4 + 2 * g], O_RDONLY);
      struct stat st;
      if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[4 + 2 * g]); return 1; }
      const uint8_t *map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) { perror("mmap"); return 1; }
      size_t first = (size_t)atol(argv[5 + 2 * g]);
      if ((first + span) * PAGE > (size_t)st.st_size) { fprintf(stderr, "range beyond %s\n", argv[4 + 2 * g]); return 1; }
      starts[g] = map + first * PAGE;
    }
    volatile size_t sink = 0;
    double best = 1e30, bytes = 0;
    for (size_t p = 0; p <= passes; p++) { /* pass 0 warms the page tables */
      double t = cpu_seconds(), compared = 0;
      size_t identical = 0;
      for (size_t k = 0; k < span; k++) {
        int differs = 0;
        for (int g = 1; g < guests && !differs; g++) {
          compared += PAGE;
          differs = memcmp(starts[g] + k * PAGE, starts[0] + k * PAGE, PAGE) != 0;
        }
        identical += !differs;
      }
      t = cpu_seconds() - t;
      sink += identical;
      if (p > 0 && t < best) best = t;
      bytes = compared;
    }
    printf("{\"xxh3_gbps\":0,\"memcmp_gbps\":%.3f,\"bytes\":%.0f,\"identical\":%zu}\n", bytes / best / 1e9, bytes, (size_t)sink / (passes + 1));
    return 0;
  } else { fprintf(stderr, "bad arguments\n"); return 2; }

  volatile uint64_t sink = 0;
  for (size_t i = 0; i < count; i++) sink ^= XXH3_64bits(pages[i], PAGE); /* warm: page tables, first touch */
  double best_hash = 1e30, best_cmp = 1e30, hash_wall = 0;
  for (size_t p = 0; p < passes; p++) {
    double w = wall_seconds();
    double t = cpu_seconds();
    uint64_t acc = 0;
    for (size_t i = 0; i < count; i++) acc ^= XXH3_64bits(pages[i], PAGE);
    sink ^= acc;
    t = cpu_seconds() - t;
    hash_wall += wall_seconds() - w;
    if (t < best_hash) best_hash = t;
    /* memcmp: each page against an identical copy (compared to the end: bytes of one page per compare) */
    if (copies) {
      t = cpu_seconds();
      int diff = 0;
      for (size_t i = 0; i < count; i++) diff += memcmp(pages[i], copies + i * PAGE, PAGE) != 0;
      sink ^= (uint64_t)diff;
      t = cpu_seconds() - t;
      if (t < best_cmp) best_cmp = t;
    }
  }
  double bytes = (double)count * PAGE;
  if (!copies) best_cmp = 0; /* not measured on files */
  /* xxh3_wall_gbps: over all passes in wall time, what this process got of the machine (parallelCeiling). */
  printf("{\"xxh3_gbps\":%.3f,\"memcmp_gbps\":%.3f,\"xxh3_wall_gbps\":%.3f,\"bytes\":%.0f,\"pages\":%zu}\n", bytes / best_hash / 1e9,
         best_cmp > 0 ? bytes / best_cmp / 1e9 : 0.0, bytes * passes / hash_wall / 1e9, bytes, count);
  return sink == 42 ? 1 : 0;
}
