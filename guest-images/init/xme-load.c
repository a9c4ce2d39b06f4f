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
 * cpu → 4 KiB blocks hashed; cowprobe → probe-page writes done (changing ones, then same-bytes ones);
 * httpd → HTTP requests completed and checked; gzip → 4 KiB blocks of input compressed (counted per file, 64 at a
 * time, when gzip has finished it and its output checked).
 *
 * Usage: xme-load <idle|memchurn|pagecache|cpu> [mib=N] [rate=PAGES_PER_S] [interval_ms=N] [seed=N]
 *        xme-load <httpd|gzip> [mib=N] [rate=OPS_PER_S] [interval_ms=N] [seed=N] [fail_after=N]
 *        xme-load cowprobe [pages=K] [writes=N] [same=M] [delay_ms=D] [gap_ms=G] [doorbell=1] [interval_ms=N]
 * mib defaults to 32 (memchurn, pagecache), 4 (httpd), 8 (gzip); rate 0 = as fast as possible (httpd, gzip, cpu;
 * memchurn and pagecache take 0 as 1000 and 200).
 *
 * httpd and gzip are applications rather than loops over memory: they run busybox's httpd and gzip (the
 * initramfs's busybox), so their pages are those of real programs — forked processes, page cache, socket
 * buffers. Both write their data set first (text-like bytes from the seed, in the /tmp tmpfs, at most 48 MiB),
 * then loop. The progress lines keep their schedule during the set-up (ops=0) and while the loop waits.
 *   httpd: files of 4–64 KiB (mixed byte counts) in /tmp/www, `mib` MiB in all; busybox httpd -f as a child on
 *          127.0.0.1:8080 (this program brings the loopback interface up: the guest has no other network);
 *          once it accepts, a client here sends HTTP/1.0 GETs for files in seeded random order, reads each answer
 *          to EOF and checks status 200, Content-Length = bytes received = the file's size, and its CRC-32.
 *          rate = requests per second. Prints "XME-HTTPD serving files=N bytes=B at http://..." when it starts.
 *   gzip:  `mib` MiB as 256 KiB files in /tmp/xme-gzip; then, file after file, round and round, `busybox gzip -c
 *          FILE` with its output read through a pipe and counted; gzip must exit 0 and its trailer must hold the
 *          file's CRC-32 and size. rate = input blocks per second. After the first pass it prints once
 *          "XME-GZIP first pass files=N in=<bytes> out=<compressed bytes>".
 * A failed request or compression prints "XME-ERROR httpd: ..." / "XME-ERROR gzip: ..." and exits with status 1
 * (init.sh then reports the status). fail_after=N (test of that path; 0 = never): once N ops are done, the next
 * request asks for a file that does not exist (404) / the next gzip is given one.
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
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* ---- application workloads: httpd and gzip ------------------------------------------------------------- */

/* Where busybox and the generated files are, and the server's port; overridable (-D) to try the program on a
   build host. */
#ifndef XME_BUSYBOX
#define XME_BUSYBOX "/bin/busybox"
#endif
#ifndef XME_APP_DIR
#define XME_APP_DIR "/tmp"
#endif
#ifndef XME_HTTP_PORT
#define XME_HTTP_PORT 8080
#endif
#define APP_IO_TIMEOUT_MS 60000u     /* one request or one file: generous, an emulated guest is slow */
#define APP_MAX_MIB 48u              /* /tmp is a 64 MiB tmpfs */
#define HTTPD_MIN_FILE 4096u
#define HTTPD_MAX_FILE (64u * 1024u)
#define GZIP_FILE_BYTES (256u * 1024u) /* 64 blocks of 4 KiB per gzip run */

/* The clock of an application workload. It holds the ops count and prints the progress lines on schedule
   whenever the workload waits (for a socket, a pipe, its pace) or finishes a piece of work, so an unpaced loop
   reports on time too, and it sleeps in poll() rather than waking to look at the time. */
struct app_clock { const struct options *o; uint64_t start, next_report, ops; };

static void app_tick(struct app_clock *c) {
  uint64_t t = now_ms();
  if (t < c->next_report) return;
  progress(c->o, c->start, c->ops);
  c->next_report += c->o->interval_ms;
  if (c->next_report <= t) c->next_report = t + c->o->interval_ms;
}

/* Wait until `fd` (if >= 0) has one of `events`, or until the time `until` (a now_ms() value), printing progress
   lines meanwhile. Returns the fd's revents, or 0 when `until` came first. */
static short app_wait(struct app_clock *c, int fd, short events, uint64_t until) {
  for (;;) {
    app_tick(c);
    uint64_t t = now_ms();
    if (t >= until) return 0;
    uint64_t wake = c->next_report < until ? c->next_report : until;
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, fd >= 0 ? 1 : 0, (int)(wake - t));
    if (n > 0) return p.revents;
    if (n < 0 && errno != EINTR) return POLLERR;
  }
}

/* With a rate, wait until `done` ops are due (`rate` per second since `since`); without one, do not wait. */
static void app_pace(struct app_clock *c, unsigned rate, uint64_t since, uint64_t done) {
  if (rate) app_wait(c, -1, 0, since + done * 1000u / rate);
  else app_tick(c);
}

/* Text-like bytes drawn from the seeded rng: words of a seeded 512-word vocabulary (common words far more often
   than rare ones), spaces, punctuation, line breaks, now and then a number. gzip makes it ~2.9 times smaller:
   compressible, not trivial; another seed gives other bytes. */
struct textgen { char word[512][12]; uint8_t len[512]; unsigned column; };

static void textgen_init(struct textgen *g) {
  for (unsigned i = 0; i < 512; i++) {
    g->len[i] = (uint8_t)(1 + rng() % 10);
    for (unsigned j = 0; j < g->len[i]; j++) g->word[i][j] = (char)('a' + rng() % 26);
  }
  g->column = 0;
}

static void textgen_fill(struct textgen *g, uint8_t *out, size_t n) {
  size_t at = 0;
  while (at < n) {
    char piece[32];
    unsigned len;
    uint64_t r = rng();
    if ((r & 15) == 0) {
      len = (unsigned)snprintf(piece, sizeof piece, "%u", (unsigned)((r >> 8) % 100000u));
    } else {
      unsigned i = (unsigned)((((r >> 4) & 511u) * ((r >> 13) & 511u)) >> 9); /* product of two uniforms: skewed to 0 */
      memcpy(piece, g->word[i], g->len[i]);
      len = g->len[i];
      unsigned mark = (unsigned)((r >> 22) & 31u);
      if (mark == 0) piece[len++] = '.';
      else if (mark < 3) piece[len++] = ',';
    }
    g->column += len + 1;
    piece[len++] = g->column > 72 ? '\n' : ' ';
    if (g->column > 72) g->column = 0;
    for (unsigned k = 0; k < len && at < n; k++) out[at++] = (uint8_t)piece[k];
  }
}

/* CRC-32 as gzip computes it (its trailer holds it): the check that a whole file went through. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
  static uint32_t table[256];
  if (!table[1]) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
  }
  uint32_t crc = 0xffffffffu;
  while (n--) crc = table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

struct app_file { uint32_t size, crc; };

/* Fill `buf` with `size` bytes of text, write them to `path` and note size and CRC; -1 after an XME-ERROR line. */
static int app_write_file(const char *who, const char *path, struct textgen *g, uint8_t *buf, size_t size, struct app_file *f) {
  textgen_fill(g, buf, size);
  f->size = (uint32_t)size;
  f->crc = crc32_of(buf, size);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) { printf("XME-ERROR %s: cannot create %s: %s\n", who, path, strerror(errno)); return -1; }
  ssize_t written = write(fd, buf, size);
  int err = errno;
  close(fd);
  if (written != (ssize_t)size) {
    printf("XME-ERROR %s: writing %s: %s\n", who, path, written < 0 ? strerror(err) : "short write (is /tmp full?)");
    return -1;
  }
  return 0;
}

/* How a child ended, as words for a message. */
static void describe_status(int status, char *out, size_t size) {
  if (WIFEXITED(status)) snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(out, size, "killed by signal %d", WTERMSIG(status));
  else snprintf(out, size, "stopped (status 0x%x)", (unsigned)status);
}

/* ---- httpd: busybox httpd serving a seeded file set, and a client in this process ---- */

struct httpd_ctx {
  struct app_clock clock;
  struct app_file *file;
  unsigned files;
  pid_t server;
  uint8_t *buf; /* one whole answer, headers and body, plus a NUL */
  size_t buf_size;
};

/* The guest has no network but loopback, and nothing else brings it up. */
static int loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP; /* the kernel gives an up loopback 127.0.0.1/8 by itself */
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int err = errno;
  close(s);
  errno = err;
  return rc;
}

/* A non-blocking socket connected to the server, or -1 with errno (ECONNREFUSED: nothing listens yet). */
static int httpd_connect(struct app_clock *c, uint64_t deadline) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(XME_HTTP_PORT);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = 0;
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return s;
  if (errno != EINPROGRESS) {
    err = errno;
  } else if (!app_wait(c, s, POLLOUT, deadline)) {
    err = ETIMEDOUT;
  } else {
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  }
  if (err == 0) return s;
  close(s);
  errno = err;
  return -1;
}

/* Check one whole answer: status 200, a Content-Length equal to the bytes that came after the headers, and
   (expect != NULL) the file's size and CRC-32. */
static int httpd_check(uint8_t *buf, size_t got, const struct app_file *expect, char *why, size_t why_size) {
  buf[got] = 0;
  char *text = (char *)buf, *end = memmem(text, got, "\r\n\r\n", 4);
  if (!end) { snprintf(why, why_size, "no end of headers in %zu bytes", got); return -1; }
  *end = 0;
  size_t body = got - (size_t)(end + 4 - text);
  unsigned status = 0;
  if (sscanf(text, "HTTP/1.%*u %u", &status) != 1) { snprintf(why, why_size, "no status line: %.60s", text); return -1; }
  if (status != 200) {
    snprintf(why, why_size, "status %u (%.*s)", status, (int)strcspn(text, "\r\n"), text);
    return -1;
  }
  long long length = -1;
  for (char *line = text; line; line = strstr(line, "\r\n") ? strstr(line, "\r\n") + 2 : NULL) {
    if (strncasecmp(line, "Content-Length:", 15) == 0) length = strtoll(line + 15, NULL, 10);
  }
  if (length < 0) { snprintf(why, why_size, "no Content-Length header"); return -1; }
  if ((size_t)length != body) { snprintf(why, why_size, "Content-Length %lld but %zu bytes came", length, body); return -1; }
  if (expect && body != expect->size) { snprintf(why, why_size, "%zu bytes, the file has %u", body, expect->size); return -1; }
  if (expect && crc32_of((uint8_t *)end + 4, body) != expect->crc) { snprintf(why, why_size, "the bytes differ from the file's (CRC-32)"); return -1; }
  return 0;
}

/* One HTTP/1.0 GET, read until EOF, then checked; 0 on success, otherwise -1 with the reason in `why`. */
static int httpd_get(struct httpd_ctx *h, const char *path, const struct app_file *expect, char *why, size_t why_size) {
  uint64_t deadline = now_ms() + APP_IO_TIMEOUT_MS;
  int s = httpd_connect(&h->clock, deadline);
  if (s < 0) { snprintf(why, why_size, "connect: %s", strerror(errno)); return -1; }
  char request[192];
  size_t length = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: xme-load\r\n\r\n", path);
  size_t sent = 0, got = 0;
  int rc = -1;
  while (sent < length) {
    ssize_t k = send(s, request + sent, length - sent, MSG_NOSIGNAL);
    if (k > 0) { sent += (size_t)k; continue; }
    if (k < 0 && (errno == EAGAIN || errno == EINTR) && app_wait(&h->clock, s, POLLOUT, deadline)) continue;
    snprintf(why, why_size, "sending the request: %s", k < 0 && errno != EAGAIN ? strerror(errno) : "timed out");
    goto out;
  }
  for (;;) {
    if (got == h->buf_size - 1) { snprintf(why, why_size, "answer longer than %zu bytes", got); goto out; }
    ssize_t k = recv(s, h->buf + got, h->buf_size - 1 - got, 0);
    if (k > 0) { got += (size_t)k; continue; }
    if (k == 0) break;
    if ((errno == EAGAIN || errno == EINTR) && app_wait(&h->clock, s, POLLIN, deadline)) continue;
    snprintf(why, why_size, "reading the answer after %zu bytes: %s", got, errno != EAGAIN ? strerror(errno) : "timed out");
    goto out;
  }
  rc = httpd_check(h->buf, got, expect, why, why_size);
out:
  close(s);
  return rc;
}

/* ", httpd exited with status 1" if the server is gone (it is reaped then), else "". */
static void httpd_server_gone(struct httpd_ctx *h, char *out, size_t size) {
  int status;
  out[0] = 0;
  if (h->server > 0 && waitpid(h->server, &status, WNOHANG) == h->server) {
    char how[64];
    describe_status(status, how, sizeof how);
    snprintf(out, size, " (busybox httpd %s)", how);
    h->server = 0;
  }
}

static int httpd_fail(struct httpd_ctx *h, const char *what, const char *why) {
  char gone[96];
  httpd_server_gone(h, gone, sizeof gone);
  printf("XME-ERROR httpd: %s after %llu requests: %s%s\n", what, (unsigned long long)h->clock.ops, why, gone);
  if (h->server > 0) kill(h->server, SIGTERM);
  return 1;
}

static int run_httpd(const struct options *o, unsigned fail_after) {
  static struct httpd_ctx h;
  static struct textgen g;
  const char *dir = XME_APP_DIR "/www";
  unsigned mib = o->mib ? o->mib : 4;
  char path[256], why[256];
  h.clock = (struct app_clock){o, now_ms(), now_ms() + o->interval_ms, 0};
  if (mib > APP_MAX_MIB) { printf("XME-ERROR httpd: mib=%u, at most %u fit in /tmp\n", mib, APP_MAX_MIB); return 2; }
  if (loopback_up() != 0) { printf("XME-ERROR httpd: cannot bring the loopback interface up: %s\n", strerror(errno)); return 1; }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) { printf("XME-ERROR httpd: mkdir %s: %s\n", dir, strerror(errno)); return 1; }

  /* The file set: sizes 4–64 KiB (any byte count) until mib MiB, text from the seed. */
  size_t total = (size_t)mib << 20, used = 0;
  h.file = calloc(total / HTTPD_MIN_FILE + 1, sizeof *h.file);
  h.buf_size = HTTPD_MAX_FILE + 16384;
  h.buf = malloc(h.buf_size);
  if (!h.file || !h.buf) { printf("XME-ERROR httpd: out of memory\n"); return 1; }
  textgen_init(&g);
  while (used < total) {
    size_t size = HTTPD_MIN_FILE + (size_t)(rng() % (HTTPD_MAX_FILE - HTTPD_MIN_FILE + 1));
    if (size > total - used) size = total - used < HTTPD_MIN_FILE ? HTTPD_MIN_FILE : total - used;
    snprintf(path, sizeof path, "%s/%u.html", dir, h.files);
    if (app_write_file("httpd", path, &g, h.buf, size, &h.file[h.files]) != 0) return 1;
    h.files++;
    used += size;
    app_tick(&h.clock);
  }

  /* The server: busybox httpd in the foreground, our child; it forks one process per connection. */
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)XME_HTTP_PORT);
  h.server = fork();
  if (h.server < 0) { printf("XME-ERROR httpd: fork: %s\n", strerror(errno)); return 1; }
  if (h.server == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the server does not outlive its client, however that ends */
    execl(XME_BUSYBOX, "busybox", "httpd", "-f", "-p", address, "-h", dir, (char *)NULL);
    dprintf(1, "XME-ERROR httpd: cannot run %s: %s\n", XME_BUSYBOX, strerror(errno));
    _exit(127);
  }
  uint64_t ready_by = now_ms() + 30000;
  for (;;) {
    int s = httpd_connect(&h.clock, ready_by);
    if (s >= 0) { close(s); break; }
    snprintf(why, sizeof why, "%s", strerror(errno));
    char gone[96];
    httpd_server_gone(&h, gone, sizeof gone);
    if (errno != ECONNREFUSED || gone[0] || now_ms() >= ready_by) return httpd_fail(&h, "waiting for the server to accept", why);
    app_wait(&h.clock, -1, 0, now_ms() + 20);
  }
  printf("XME-HTTPD serving files=%u bytes=%zu at http://%s/\n", h.files, used, address);

  /* The client: GET a seeded random file, check it, count it. */
  uint64_t since = now_ms();
  for (;;) {
    app_pace(&h.clock, o->rate, since, h.clock.ops);
    const struct app_file *expect = NULL;
    if (fail_after && h.clock.ops >= fail_after) {
      snprintf(path, sizeof path, "/xme-missing.html"); /* fail_after: a request that must fail, loudly */
    } else {
      unsigned f = (unsigned)(rng() % h.files);
      snprintf(path, sizeof path, "/%u.html", f);
      expect = &h.file[f];
    }
    if (httpd_get(&h, path, expect, why, sizeof why) != 0) {
      char what[300];
      snprintf(what, sizeof what, "GET %s", path);
      return httpd_fail(&h, what, why);
    }
    if (!expect) return httpd_fail(&h, "GET /xme-missing.html", "it should have failed but did not");
    h.clock.ops++;
  }
}

/* ---- gzip: busybox gzip -c over seeded text files, its output counted through a pipe ---- */

/* Compress `path` with `gzip -c`, read all it writes, check its exit status and its trailer (CRC-32 and size of
   the input, which `expect` knows; NULL: no check). 0 on success, otherwise -1 with the reason in `why`. */
static int gzip_one(struct app_clock *c, const char *path, const struct app_file *expect, uint8_t *buf, size_t buf_size,
                    uint64_t *out_bytes, char *why, size_t why_size) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) { snprintf(why, why_size, "pipe: %s", strerror(errno)); return -1; }
  pid_t pid = fork();
  if (pid < 0) { snprintf(why, why_size, "fork: %s", strerror(errno)); close(p[0]); close(p[1]); return -1; }
  if (pid == 0) {
    dup2(p[1], 1);
    execl(XME_BUSYBOX, "busybox", "gzip", "-c", path, (char *)NULL);
    dprintf(2, "xme-load: cannot run %s: %s\n", XME_BUSYBOX, strerror(errno));
    _exit(127);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  uint64_t deadline = now_ms() + APP_IO_TIMEOUT_MS, out = 0;
  uint8_t tail[8] = {0};
  int rc = 0;
  for (;;) {
    ssize_t k = read(p[0], buf, buf_size);
    if (k > 0) {
      if (k >= 8) {
        memcpy(tail, buf + k - 8, 8);
      } else {
        memmove(tail, tail + k, (size_t)(8 - k));
        memcpy(tail + 8 - k, buf, (size_t)k);
      }
      out += (uint64_t)k;
      continue;
    }
    if (k == 0) break;
    if ((errno == EAGAIN || errno == EINTR) && app_wait(c, p[0], POLLIN, deadline)) continue;
    snprintf(why, why_size, "reading gzip's output after %llu bytes: %s", (unsigned long long)out,
             errno != EAGAIN ? strerror(errno) : "timed out");
    kill(pid, SIGKILL);
    rc = -1;
    break;
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (rc != 0) return rc;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char how[64];
    describe_status(status, how, sizeof how);
    snprintf(why, why_size, "gzip %s", how);
    return -1;
  }
  uint32_t crc = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
  uint32_t isize = (uint32_t)tail[4] | (uint32_t)tail[5] << 8 | (uint32_t)tail[6] << 16 | (uint32_t)tail[7] << 24;
  if (out < 18) { snprintf(why, why_size, "gzip wrote only %llu bytes", (unsigned long long)out); return -1; }
  if (expect && (crc != expect->crc || isize != expect->size)) {
    snprintf(why, why_size, "gzip's trailer says crc %08x size %u, the file has crc %08x size %u", crc, isize, expect->crc, expect->size);
    return -1;
  }
  *out_bytes = out;
  return 0;
}

static int run_gzip(const struct options *o, unsigned fail_after) {
  static struct app_clock c;
  static struct textgen g;
  const char *dir = XME_APP_DIR "/xme-gzip";
  unsigned mib = o->mib ? o->mib : 8;
  char path[256], why[300];
  c = (struct app_clock){o, now_ms(), now_ms() + o->interval_ms, 0};
  if (mib > APP_MAX_MIB) { printf("XME-ERROR gzip: mib=%u, at most %u fit in /tmp\n", mib, APP_MAX_MIB); return 2; }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) { printf("XME-ERROR gzip: mkdir %s: %s\n", dir, strerror(errno)); return 1; }
  unsigned files = mib * ((1u << 20) / GZIP_FILE_BYTES);
  struct app_file *file = calloc(files, sizeof *file);
  uint8_t *buf = malloc(GZIP_FILE_BYTES);
  if (!file || !buf) { printf("XME-ERROR gzip: out of memory\n"); return 1; }
  textgen_init(&g);
  for (unsigned i = 0; i < files; i++) {
    snprintf(path, sizeof path, "%s/%u.txt", dir, i);
    if (app_write_file("gzip", path, &g, buf, GZIP_FILE_BYTES, &file[i]) != 0) return 1;
    app_tick(&c);
  }

  uint64_t since = now_ms(), first_in = 0, first_out = 0; /* the first pass's bytes, reported once */
  for (unsigned i = 0;; i = (i + 1) % files) {
    app_pace(&c, o->rate, since, c.ops);
    const struct app_file *expect = &file[i];
    if (fail_after && c.ops >= fail_after) {
      snprintf(path, sizeof path, "%s/xme-missing.txt", dir); /* fail_after: a file that is not there, loudly */
      expect = NULL;
    } else {
      snprintf(path, sizeof path, "%s/%u.txt", dir, i);
    }
    uint64_t out = 0;
    if (gzip_one(&c, path, expect, buf, GZIP_FILE_BYTES, &out, why, sizeof why) != 0) {
      printf("XME-ERROR gzip: %s after %llu blocks: %s\n", path, (unsigned long long)c.ops, why);
      return 1;
    }
    if (!expect) { printf("XME-ERROR gzip: compressing %s should have failed but did not\n", path); return 1; }
    c.ops += expect->size / PAGE;
    if (c.ops <= (uint64_t)files * (GZIP_FILE_BYTES / PAGE)) {
      first_in += expect->size;
      first_out += out;
      if (i == files - 1) { /* how compressible the data is */
        printf("XME-GZIP first pass files=%u in=%llu out=%llu\n", files, (unsigned long long)first_in, (unsigned long long)first_out);
      }
    }
  }
}

int main(int argc, char **argv) {
  struct options o = {argc > 1 ? argv[1] : "idle", 0, 0, 1000}; /* mib 0: the workload's default */
  unsigned fail_after = 0;
  for (int i = 2; i < argc; i++) {
    o.mib = parse_uint(argv[i], "mib", o.mib);
    fail_after = parse_uint(argv[i], "fail_after", fail_after);
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
    if (o.mib == 0) o.mib = 32;
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
    if (o.mib == 0) o.mib = 32;
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
  } else if (strcmp(o.workload, "httpd") == 0) {
    return run_httpd(&o, fail_after);
  } else if (strcmp(o.workload, "gzip") == 0) {
    return run_gzip(&o, fail_after);
  } else {
    printf("XME-ERROR unknown workload '%s' (known: idle memchurn pagecache cpu cowprobe httpd gzip)\n", o.workload);
    return 2;
  }
  return 0;
}
