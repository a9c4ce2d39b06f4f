/*
 * xme-load: the workload that runs inside every xme guest (PID 1's only child of interest).
 *
 * It is deliberately a small static C program rather than a shell loop: the harness needs workloads whose
 * memory behaviour is controlled (how many pages are written per second, how much memory is touched) and whose
 * progress is countable, so that CoW faults and workload slowdown can be compared between strategies.
 *
 * Every interval it prints one line on the console, which the harness parses:
 *   XME-PROGRESS t_ms=<ms since start> ops=<cumulative ops> workload=<name>
 * "ops" means: idle → 0; memchurn → 4 KiB pages written; pagecache → 4 KiB blocks written or read;
 * cpu → 4 KiB blocks hashed.
 *
 * Usage: xme-load <idle|memchurn|pagecache|cpu> [mib=N] [rate=PAGES_PER_S] [interval_ms=N] [seed=N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* xorshift64*: deterministic per seed, so that guests of one run write comparable patterns. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

struct options {
  const char *workload;
  unsigned mib;          /* memory the workload works on */
  unsigned rate;         /* pages (or blocks) per second; 0 = as fast as possible */
  unsigned interval_ms;  /* progress line period */
};

static unsigned parse_uint(const char *arg, const char *key, unsigned fallback) {
  size_t n = strlen(key);
  if (strncmp(arg, key, n) == 0 && arg[n] == '=') return (unsigned)strtoul(arg + n + 1, NULL, 10);
  return fallback;
}

static void progress(const struct options *o, uint64_t start, uint64_t ops) {
  printf("XME-PROGRESS t_ms=%llu ops=%llu workload=%s\n", (unsigned long long)(now_ms() - start),
         (unsigned long long)ops, o->workload);
  fflush(stdout);
}

/* Do `per_slice` units of work every 10 ms slice so that the rate is smooth, and report every interval. */
typedef uint64_t (*work_fn)(void *ctx, unsigned units);

static void run_paced(const struct options *o, work_fn fn, void *ctx) {
  const unsigned slice_ms = 10;
  uint64_t start = now_ms(), next_report = start + o->interval_ms, ops = 0;
  double carry = 0;
  for (;;) {
    uint64_t slice_start = now_ms();
    unsigned units;
    if (o->rate == 0) {
      units = 64;
    } else {
      carry += (double)o->rate * slice_ms / 1000.0;
      units = (unsigned)carry;
      carry -= units;
    }
    if (units) ops += fn(ctx, units);
    uint64_t t = now_ms();
    if (t >= next_report) {
      progress(o, start, ops);
      next_report += o->interval_ms;
      if (next_report <= t) next_report = t + o->interval_ms;
    }
    if (o->rate != 0 && t - slice_start < slice_ms) sleep_ms((unsigned)(slice_ms - (t - slice_start)));
  }
}

struct mem_ctx { uint8_t *base; size_t pages; uint64_t stamp; };

static uint64_t memchurn_step(void *p, unsigned units) {
  struct mem_ctx *c = p;
  for (unsigned i = 0; i < units; i++) {
    size_t page = (size_t)(rng() % c->pages);
    uint64_t *w = (uint64_t *)(c->base + page * PAGE);
    /* Change a few words spread over the page: enough to make its content unique again. */
    c->stamp++;
    w[0] = c->stamp;
    w[257] = rng();
    w[511] = c->stamp ^ 0x9e3779b97f4a7c15ull;
  }
  return units;
}

struct cache_ctx { uint8_t block[PAGE]; unsigned files; unsigned next; };

static uint64_t pagecache_step(void *p, unsigned units) {
  struct cache_ctx *c = p;
  char path[64];
  uint64_t done = 0;
  for (unsigned i = 0; i < units; i++) {
    /* Each file is 16 blocks (64 KiB). Alternate: rewrite one file, read another back. */
    unsigned f = c->next++ % c->files;
    snprintf(path, sizeof path, "/tmp/xme-cache/%u", f);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) continue;
    if (i % 2 == 0) {
      ((uint64_t *)c->block)[0] = rng();
      for (int b = 0; b < 16; b++) done += write(fd, c->block, PAGE) == (ssize_t)PAGE;
    } else {
      for (int b = 0; b < 16; b++) done += read(fd, c->block, PAGE) == (ssize_t)PAGE;
    }
    close(fd);
  }
  return done;
}

struct cpu_ctx { uint8_t block[PAGE]; uint64_t acc; };

static uint64_t cpu_step(void *p, unsigned units) {
  struct cpu_ctx *c = p;
  for (unsigned i = 0; i < units; i++) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over one block */
    for (unsigned j = 0; j < PAGE; j++) h = (h ^ c->block[j]) * 1099511628211ull;
    c->block[h % PAGE] ^= (uint8_t)h;
    c->acc += h;
  }
  return units;
}

static uint64_t idle_step(void *p, unsigned units) { (void)p; (void)units; return 0; }

int main(int argc, char **argv) {
  struct options o = {argc > 1 ? argv[1] : "idle", 32, 0, 1000};
  for (int i = 2; i < argc; i++) {
    o.mib = parse_uint(argv[i], "mib", o.mib);
    o.rate = parse_uint(argv[i], "rate", o.rate);
    o.interval_ms = parse_uint(argv[i], "interval_ms", o.interval_ms);
    rng_state ^= parse_uint(argv[i], "seed", 0);
  }
  if (o.interval_ms == 0) o.interval_ms = 1000;
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (strcmp(o.workload, "idle") == 0) {
    o.rate = 100; /* one no-op unit per slice: the loop only sleeps and reports */
    run_paced(&o, idle_step, NULL);
  } else if (strcmp(o.workload, "memchurn") == 0) {
    static struct mem_ctx c;
    c.pages = (size_t)o.mib * 256u;
    c.base = mmap(NULL, c.pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (c.base == MAP_FAILED) { printf("XME-ERROR memchurn: mmap %u MiB failed: %s\n", o.mib, strerror(errno)); return 1; }
    /* First touch, page by page: every page of the working set gets unique, non-zero content, so that the
       pages later rewritten at random are private data, not zero pages. */
    for (size_t pg = 0; pg < c.pages; pg++) {
      uint64_t *w = (uint64_t *)(c.base + pg * PAGE);
      w[0] = ++c.stamp;
      w[257] = rng();
      w[511] = c.stamp ^ 0x9e3779b97f4a7c15ull;
    }
    if (o.rate == 0) o.rate = 1000;
    run_paced(&o, memchurn_step, &c);
  } else if (strcmp(o.workload, "pagecache") == 0) {
    static struct cache_ctx c;
    memset(c.block, 0xa5, sizeof c.block);
    c.files = o.mib * 16u; /* 64 KiB files */
    if (c.files == 0) c.files = 1;
    mkdir("/tmp/xme-cache", 0700);
    if (o.rate == 0) o.rate = 200;
    run_paced(&o, pagecache_step, &c);
  } else if (strcmp(o.workload, "cpu") == 0) {
    static struct cpu_ctx c;
    run_paced(&o, cpu_step, &c);
  } else {
    printf("XME-ERROR unknown workload '%s' (known: idle memchurn pagecache cpu)\n", o.workload);
    return 2;
  }
  return 0;
}
