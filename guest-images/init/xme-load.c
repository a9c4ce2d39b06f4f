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
 * cpu → 4 KiB blocks hashed; cowprobe → probe-page writes done (changing ones, then same-bytes ones).
 *
 * Usage: xme-load <idle|memchurn|pagecache|cpu> [mib=N] [rate=PAGES_PER_S] [interval_ms=N] [seed=N]
 *        xme-load cowprobe [pages=K] [writes=N] [same=M] [delay_ms=D] [gap_ms=G] [doorbell=1] [interval_ms=N]
 *
 * cowprobe is a known-answer copy-on-write workload: K locked anonymous pages whose content depends only on
 * the page index (identical in every guest, different between pages, never zero), their guest-physical frame
 * numbers printed on the console, then — D ms after it reports ready — exactly N of them written once each
 * (pages 0..N-1, G ms apart) and M more written with the bytes already there (pages N..N+M-1: a write the
 * hypervisor sees but a content re-read cannot). Console protocol (hex frame numbers, lines < 900 chars):
 *   XME-COWPROBE gfns from=<index of the first page on this line> list=<gfn>,<gfn>,...
 *   XME-COWPROBE doorbell gfn=<gfn>           (doorbell=1 only; then the writes wait for the harness, not D)
 *   XME-COWPROBE ready pages=K writes=N same=M
 *   XME-COWPROBE rung                         (doorbell=1: the harness stored the ring value; writes begin)
 *   XME-COWPROBE written writes=N same=M
 * and XME-PROGRESS lines throughout, as for the other workloads. The seed is not used: every guest's probe
 * pages are the same bytes.
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

/* ---- cowprobe ---------------------------------------------------------------------------------------- */

/* splitmix64: the content of a probe page is a function of its index only (not of the seed). */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Word 0 = "XMECOW" tag + page index (non-zero, unique per page); the others pseudo-random from (index, word). */
static void cowprobe_fill(uint64_t *w, uint64_t index) {
  w[0] = 0x584d45434f570000ull ^ (index & 0xffffull) ^ ((index >> 16) << 48);
  for (unsigned j = 1; j < PAGE / 8; j++) w[j] = mix64(index * (PAGE / 8) + j);
}

/* The word a changing write changes, and what it writes there: also a function of the index only, so that
   written pages stay identical between guests too. */
#define COWPROBE_WORD 1u
static uint64_t cowprobe_written(uint64_t index) { return ~mix64(index * (PAGE / 8) + COWPROBE_WORD); }

/* "XMEGO!!\0" little-endian: what the harness stores in word 0 of the doorbell page to start the writes. */
#define COWPROBE_RING 0x00212147454d58ull

struct cowprobe_ctx {
  volatile uint64_t *base;
  unsigned pages, writes, same, gap_ms;
  uint64_t first_write_at; /* now_ms() of the first write */
  unsigned done;           /* writes done so far, changing ones first */
  volatile uint64_t *doorbell; /* doorbell=1: writes begin when the harness stores COWPROBE_RING here */
  int reported;
  uint64_t *gfns;
};

/* Guest-physical frame of the page at `address`, or 0 with a message in `why`. */
static uint64_t pagemap_gfn(int fd, const void *address, char *why, size_t why_size) {
  uint64_t entry = 0;
  off_t offset = (off_t)((uintptr_t)address / PAGE) * (off_t)sizeof entry;
  ssize_t got = pread(fd, &entry, sizeof entry, offset);
  if (got != (ssize_t)sizeof entry) {
    snprintf(why, why_size, "pagemap read failed: %s", got < 0 ? strerror(errno) : "short read");
    return 0;
  }
  if (!(entry >> 63)) { snprintf(why, why_size, "page not present (entry 0x%llx)", (unsigned long long)entry); return 0; }
  uint64_t pfn = entry & ((1ull << 55) - 1);
  if (pfn == 0) snprintf(why, why_size, "pagemap gives no frame number (needs CAP_SYS_ADMIN)");
  return pfn;
}

static int cowprobe_gfns(struct cowprobe_ctx *c, uint64_t *out) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) { printf("XME-ERROR cowprobe: cannot open /proc/self/pagemap: %s\n", strerror(errno)); return -1; }
  for (unsigned i = 0; i < c->pages; i++) {
    char why[128] = "";
    out[i] = pagemap_gfn(fd, (const void *)(c->base + (size_t)i * (PAGE / 8)), why, sizeof why);
    if (out[i] == 0) {
      printf("XME-ERROR cowprobe: page %u: %s\n", i, why);
      close(fd);
      return -1;
    }
  }
  close(fd);
  return 0;
}

static uint64_t cowprobe_step(void *p, unsigned units) {
  struct cowprobe_ctx *c = p;
  (void)units;
  if (c->doorbell) {
    if (*c->doorbell != COWPROBE_RING) return 0;
    c->doorbell = NULL;
    c->first_write_at = now_ms();
    printf("XME-COWPROBE rung\n");
    fflush(stdout);
  }
  uint64_t done_before = c->done, t = now_ms();
  while (c->done < c->writes + c->same && t >= c->first_write_at + (uint64_t)c->done * c->gap_ms) {
    unsigned i = c->done;
    volatile uint64_t *w = c->base + (size_t)i * (PAGE / 8);
    if (i < c->writes) {
      w[COWPROBE_WORD] = cowprobe_written(i);
    } else {
      uint64_t v = w[COWPROBE_WORD]; /* volatile: a real load and a real store of the same bytes */
      w[COWPROBE_WORD] = v;
    }
    c->done++;
  }
  if (c->done == c->writes + c->same && !c->reported) {
    c->reported = 1;
    /* The probe is only a known answer if no page moved: check the frames again. */
    uint64_t *now = calloc(c->pages, sizeof *now);
    if (now && cowprobe_gfns(c, now) == 0) {
      for (unsigned i = 0; i < c->pages; i++) {
        if (now[i] != c->gfns[i]) {
          printf("XME-ERROR cowprobe: page %u moved from gfn %llx to %llx\n", i, (unsigned long long)c->gfns[i],
                 (unsigned long long)now[i]);
          break;
        }
      }
    }
    free(now);
    printf("XME-COWPROBE written writes=%u same=%u\n", c->writes, c->same);
    fflush(stdout);
  }
  return c->done - done_before;
}

static int run_cowprobe(struct options *o, int argc, char **argv) {
  static struct cowprobe_ctx c;
  unsigned delay_ms = 8000, doorbell = 0;
  c.pages = 256, c.writes = 32, c.same = 0, c.gap_ms = 250;
  for (int i = 2; i < argc; i++) {
    c.pages = parse_uint(argv[i], "pages", c.pages);
    c.writes = parse_uint(argv[i], "writes", c.writes);
    c.same = parse_uint(argv[i], "same", c.same);
    c.gap_ms = parse_uint(argv[i], "gap_ms", c.gap_ms);
    delay_ms = parse_uint(argv[i], "delay_ms", delay_ms);
    doorbell = parse_uint(argv[i], "doorbell", doorbell);
  }
  if (c.pages == 0 || c.pages > (1u << 20) || (uint64_t)c.writes + c.same > c.pages) {
    printf("XME-ERROR cowprobe: need 0 < pages <= 1048576 and writes + same <= pages (pages=%u writes=%u same=%u)\n",
           c.pages, c.writes, c.same);
    return 2;
  }
  size_t bytes = (size_t)c.pages * PAGE;
  void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) { printf("XME-ERROR cowprobe: mmap %u pages failed: %s\n", c.pages, strerror(errno)); return 1; }
  /* 4 KiB pages only (before the first touch): a huge page would put many probe pages in one frame range that
     khugepaged may move. */
  if (madvise(base, bytes, MADV_NOHUGEPAGE) != 0) printf("XME-COWPROBE note madvise(MADV_NOHUGEPAGE) failed: %s\n", strerror(errno));
  c.base = base;
  for (unsigned i = 0; i < c.pages; i++) cowprobe_fill((uint64_t *)base + (size_t)i * (PAGE / 8), i);
  /* Keep every page in its frame: locked (never swapped) and not moved by compaction (best effort). */
  int fd = open("/proc/sys/vm/compact_unevictable_allowed", O_WRONLY);
  if (fd >= 0) {
    if (write(fd, "0\n", 2) != 2) printf("XME-COWPROBE note cannot set compact_unevictable_allowed: %s\n", strerror(errno));
    close(fd);
  }
  if (mlock(base, bytes) != 0) printf("XME-COWPROBE note mlock failed: %s\n", strerror(errno));

  c.gfns = calloc(c.pages, sizeof *c.gfns);
  if (!c.gfns) { printf("XME-ERROR cowprobe: out of memory\n"); return 1; }
  if (cowprobe_gfns(&c, c.gfns) != 0) return 1;
  char line[1024];
  for (unsigned i = 0; i < c.pages;) {
    int n = snprintf(line, sizeof line, "XME-COWPROBE gfns from=%u list=", i);
    const char *sep = "";
    while (i < c.pages && n < 860) {
      n += snprintf(line + n, sizeof line - (size_t)n, "%s%llx", sep, (unsigned long long)c.gfns[i]);
      sep = ",";
      i++;
    }
    printf("%s\n", line);
  }
  if (doorbell) {
    /* One more locked page, zero but for the harness's ring: the writes wait for it, not for a clock, so a
       slow host (nested emulation) cannot make them start before the harness shared the probe pages. */
    void *bell = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bell == MAP_FAILED) { printf("XME-ERROR cowprobe: doorbell mmap failed: %s\n", strerror(errno)); return 1; }
    memset(bell, 0, PAGE);
    if (mlock(bell, PAGE) != 0) printf("XME-COWPROBE note doorbell mlock failed: %s\n", strerror(errno));
    int pm = open("/proc/self/pagemap", O_RDONLY);
    char why[128] = "cannot open /proc/self/pagemap";
    uint64_t gfn = pm >= 0 ? pagemap_gfn(pm, bell, why, sizeof why) : 0;
    if (pm >= 0) close(pm);
    if (!gfn) { printf("XME-ERROR cowprobe: doorbell page: %s\n", why); return 1; }
    c.doorbell = bell;
    printf("XME-COWPROBE doorbell gfn=%llx\n", (unsigned long long)gfn);
  }
  printf("XME-COWPROBE ready pages=%u writes=%u same=%u\n", c.pages, c.writes, c.same);
  fflush(stdout);
  c.first_write_at = now_ms() + delay_ms;
  o->rate = 100; /* one step per 10 ms slice: the step writes when a write is due */
  run_paced(o, cowprobe_step, &c);
  return 0;
}

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
  } else if (strcmp(o.workload, "cowprobe") == 0) {
    return run_cowprobe(&o, argc, argv);
  } else {
    printf("XME-ERROR unknown workload '%s' (known: idle memchurn pagecache cpu cowprobe)\n", o.workload);
    return 2;
  }
  return 0;
}
