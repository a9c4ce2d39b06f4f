/*
 * xme's page-scan engine: the per-page loops of content-based sharing, in C so that a page costs what the
 * hardware needs (XXH3 over 4 KiB, a memcmp) and not a JS-to-C crossing per page (≈ 70 ns through koffi, a
 * quarter of the hash itself). Built on first use by native-build.ts (gcc -O3 -shared, linked with Debian's
 * libxxhash) and called through koffi once per chunk of pages, never once per page.
 *
 * Keys: one uint64 per page, high word = top 32 bits of the page's XXH3, low word = the page's global index
 * (guest << 24 | gfn). Sorting the keys groups pages by (truncated) hash; truncation only adds candidates that
 * the byte compare then rejects — a hash only proposes, bytes decide.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

uint64_t XXH3_64bits(const void *input, size_t length); /* libxxhash.so.0 (no header on this host) */

#define PAGE 4096

/* All zeros? Cache line by cache line, stopping at the first one that is not (a data page stops at once). */
static int all_zero(const uint8_t *page) {
  const uint64_t *words = (const uint64_t *)page;
  for (size_t line = 0; line < PAGE / 8; line += 8) {
    uint64_t acc = 0;
    for (size_t i = 0; i < 8; i++) acc |= words[line + i];
    if (acc) return 0;
  }
  return 1;
}

/* Hash `count` pages at `base` into hashes[0..count). */
void xme_hash_pages(uintptr_t base, uint32_t count, uint64_t *hashes) {
  for (uint32_t i = 0; i < count; i++) hashes[i] = XXH3_64bits((const void *)(base + (uintptr_t)i * PAGE), PAGE);
}

#define FLAG_ZERO 1
#define FLAG_PAIR 2
#define KEY(hash, index) (((hash) & 0xffffffff00000000ull) | (uint64_t)(index))

/*
 * One page of the pass, confirming in cache what can be confirmed:
 *  - if the previous guest's page at the same gfn (prev, 0 = none) has the same bytes, the page is a PAIR: its
 *    hash is prev_hash, not computed. Identical guests have most of their duplicates at the same gfn, and one
 *    memcmp (the previous page is still in L2, a differing page usually differs in its first bytes) costs
 *    less than a hash: the byte confirmation of the commonest duplicate is also its proposal;
 *  - a page whose first word is zero is checked for zeros first: an all-zero page is ZERO, confirmed by that
 *    check alone and not hashed (its hash is the zero page's); any other page stops the check at its first
 *    non-zero word, and is then read from L1 by the hash;
 *  - else its XXH3 (if that is the zero page's, the zero check decides), flag 0.
 */
static inline uint64_t scan_page(const uint8_t *page, const uint8_t *prev, uint64_t prev_hash, uint64_t zero_hash, uint8_t *flag, double *compared, double *hashed) {
  if (prev) {
    *compared += PAGE;
    if (memcmp(page, prev, PAGE) == 0) {
      *flag = FLAG_PAIR;
      return prev_hash;
    }
  }
  if (*(const uint64_t *)page == 0) {
    *compared += PAGE;
    if (all_zero(page)) {
      *flag = FLAG_ZERO;
      return zero_hash;
    }
  }
  uint64_t hash = XXH3_64bits(page, PAGE);
  *hashed += PAGE;
  *flag = 0;
  return hash;
}

/*
 * Pages of one run, from a buffer (a backend that copies): pages at `base` have global indices first_index, …;
 * prev_hashes / prev_addrs are the previous guest's pages at the same gfns (address 0 = none), cur_* get this
 * guest's for the next. A ZERO page gets no key (it is all zeros; its address is not passed on); every other
 * page appends its key from position `fill`. Returns the new fill; stats[0] += bytes compared, stats[1] +=
 * bytes hashed.
 */
uint32_t xme_hash_keys(uintptr_t base, uint32_t count, uint32_t first_index, uint64_t zero_hash, uint64_t *keys, uint32_t fill, uint8_t *flags,
                       const uint64_t *prev_hashes, const uint64_t *prev_addrs, uint64_t *cur_hashes, uint64_t *cur_addrs, double *stats) {
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *page = (const uint8_t *)(base + (uintptr_t)i * PAGE);
    uint8_t flag;
    uint64_t hash = scan_page(page, (const uint8_t *)(uintptr_t)prev_addrs[i], prev_hashes[i], zero_hash, &flag, &stats[0], &stats[1]);
    flags[i] = flag;
    cur_hashes[i] = hash;
    cur_addrs[i] = flag == FLAG_ZERO ? 0 : (uint64_t)(uintptr_t)page;
    if (flag != FLAG_ZERO) keys[fill++] = KEY(hash, first_index + i);
  }
  return fill;
}

/*
 * The whole pass over guests whose RAM is each one mapped view (bases[g], page_counts[g] pages), in lockstep
 * windows of 64 pages (256 KiB: guest g − 1's window is still in L2 when guest g's is read). On entry
 * flags[flag_offsets[g] + gfn] is the residency: 0 for a hole (never read: it is zeros and reading would
 * allocate it), non-zero for a page to read; on return a hole is FLAG_ZERO and every read page has its flag.
 * Keys are appended from 0; returns how many. stats[0] += bytes compared, stats[1] += bytes hashed, stats[2]
 * += pages read.
 *
 * xme_hash_guests_range does the windows of gfns [first_gfn, end_gfn) only (first_gfn a multiple of WINDOW):
 * no window looks at another (a page pairs only with the previous guest's page at its gfn), so passes over
 * consecutive ranges, each writing its own keys, give the flags of the whole pass and, put end to end in
 * range order, its very keys (harness/hashing/parallel-scan.ts runs them on several threads).
 */
#define WINDOW 64
uint32_t xme_hash_guests_range(uint32_t guests, const uint64_t *bases, const uint32_t *page_counts, uint8_t *flags, const uint32_t *flag_offsets,
                               uint64_t zero_hash, uint64_t *keys, double *stats, uint32_t first_gfn, uint32_t end_gfn) {
  uint64_t hashes[2][WINDOW];
  const uint8_t *addrs[2][WINDOW];
  uint32_t longest = 0, fill = 0;
  double read = 0;
  for (uint32_t g = 0; g < guests; g++) if (page_counts[g] > longest) longest = page_counts[g];
  if (end_gfn < longest) longest = end_gfn;
  for (uint32_t window = first_gfn; window < longest; window += WINDOW) {
    memset(addrs[1], 0, sizeof addrs[1]); /* the first guest has no previous guest */
    for (uint32_t g = 0; g < guests; g++) {
      int cur = g & 1, prev = 1 - cur;
      uint32_t end = window + WINDOW < page_counts[g] ? window + WINDOW : page_counts[g];
      uint8_t *guest_flags = flags + flag_offsets[g];
      const uint8_t *base = (const uint8_t *)(uintptr_t)bases[g];
      for (uint32_t gfn = window; gfn < end; gfn++) {
        uint32_t slot = gfn - window;
        if (guest_flags[gfn] == 0) { guest_flags[gfn] = FLAG_ZERO; addrs[cur][slot] = 0; continue; }
        const uint8_t *page = base + (uintptr_t)gfn * PAGE;
        uint8_t flag;
        uint64_t hash = scan_page(page, addrs[prev][slot], hashes[prev][slot], zero_hash, &flag, &stats[0], &stats[1]);
        read++;
        guest_flags[gfn] = flag;
        hashes[cur][slot] = hash;
        addrs[cur][slot] = flag == FLAG_ZERO ? 0 : page;
        if (flag != FLAG_ZERO) keys[fill++] = KEY(hash, (g << 24) | gfn);
      }
      for (uint32_t slot = end > window ? end - window : 0; slot < WINDOW; slot++) addrs[cur][slot] = 0;
    }
  }
  stats[2] += read;
  return fill;
}

uint32_t xme_hash_guests(uint32_t guests, const uint64_t *bases, const uint32_t *page_counts, uint8_t *flags, const uint32_t *flag_offsets,
                         uint64_t zero_hash, uint64_t *keys, double *stats) {
  return xme_hash_guests_range(guests, bases, page_counts, flags, flag_offsets, zero_hash, keys, stats, 0, UINT32_MAX);
}

/*
 * Pages to read per window of WINDOW gfns, over all guests (flags as xme_hash_guests takes them: non-zero =
 * read): what harness/hashing/parallel-scan.ts balances the threads' ranges by. out holds ⌈longest / WINDOW⌉.
 */
void xme_count_windows(const uint8_t *flags, const uint32_t *flag_offsets, const uint32_t *page_counts, uint32_t guests, uint32_t *out) {
  for (uint32_t g = 0; g < guests; g++) {
    const uint8_t *f = flags + flag_offsets[g];
    for (uint32_t gfn = 0; gfn < page_counts[g]; gfn++) out[gfn / WINDOW] += f[gfn] != 0;
  }
}

/* The global indices (guest << 24 | gfn) of the pages whose flag is `want`, into out (NULL: only count). */
uint32_t xme_collect_flag(const uint8_t *flags, const uint32_t *flag_offsets, const uint32_t *page_counts, uint32_t guests, uint8_t want, uint32_t *out) {
  uint32_t n = 0;
  for (uint32_t g = 0; g < guests; g++) {
    const uint8_t *f = flags + flag_offsets[g];
    for (uint32_t gfn = 0; gfn < page_counts[g]; gfn++)
      if (f[gfn] == want) {
        if (out) out[n] = (g << 24) | gfn;
        n++;
      }
  }
  return n;
}

/* Keys from stored hashes (the incremental scanner keeps them): pages whose flag is `want` only. Returns the new fill. */
uint32_t xme_keys_from_hashes(const uint64_t *hashes, const uint8_t *flags, uint8_t want, uint32_t count, uint32_t first_index, uint64_t *keys, uint32_t fill) {
  for (uint32_t i = 0; i < count; i++)
    if (flags[i] == want) keys[fill++] = KEY(hashes[i], first_index + i);
  return fill;
}

/*
 * Sort keys by their high word (LSD radix, 4 passes of 8 bits; stable: pages of one hash keep their order,
 * the previous guest's page before its pair). scratch holds n keys. O(n), no allocation: the index is keys + scratch = 16 bytes per page.
 */
void xme_sort_keys(uint64_t *keys, uint32_t n, uint64_t *scratch) {
  uint64_t *from = keys, *to = scratch;
  for (int shift = 32; shift < 64; shift += 8) {
    uint32_t count[257] = {0};
    for (uint32_t i = 0; i < n; i++) count[((from[i] >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (uint32_t i = 0; i < n; i++) to[count[(from[i] >> shift) & 0xff]++] = from[i];
    uint64_t *t = from; from = to; to = t;
  }
  /* 4 passes: the result is back in keys. */
}

/*
 * Merge `runs` runs of keys each sorted by high word (xme_sort_keys), run r at keys[starts[r], starts[r] +
 * counts[r]), into out (not overlapping them), by high word; on equal high words the earlier run's key first, so
 * that sorting runs apart and merging them gives what sorting their concatenation gives (a stable sort).
 */
void xme_merge_sorted(const uint64_t *keys, const uint32_t *starts, const uint32_t *counts, uint32_t runs, uint64_t *out) {
  uint32_t at[64], end[64], total = 0;
  for (uint32_t r = 0; r < runs && r < 64; r++) { at[r] = starts[r]; end[r] = starts[r] + counts[r]; total += counts[r]; }
  for (uint32_t i = 0; i < total; i++) {
    uint32_t best = runs;
    uint64_t best_high = 0;
    for (uint32_t r = 0; r < runs; r++) {
      if (at[r] == end[r]) continue;
      uint64_t high = keys[at[r]] >> 32;
      if (best == runs || high < best_high) { best = r; best_high = high; }
    }
    out[i] = keys[at[best]++];
  }
}

/*
 * Byte-confirm the candidate groups of sorted keys (runs of equal high words) where every page can be read in
 * place: page address = bases[index >> 24] + (index & 0xffffff) * 4096; its flag (xme_hash_keys) is
 * flags[flag_offsets[index >> 24] + (index & 0xffffff)]. Each run is partitioned into classes of identical
 * bytes (each page compared with the first page of each class until one matches; the run is rewritten so that
 * each class is contiguous). A FLAG_PAIR page whose partner (previous guest, same gfn) is the class's first
 * page, or the page placed just before it, was confirmed equal to it in cache: it joins without a compare.
 * For every class of two or more pages, bounds[2k] / bounds[2k+1] are its [start, end) positions in keys.
 * Returns the number of classes; compared[0] += bytes compared. scratch holds n keys.
 */
#define PAGE_ADDR(bases, index) ((const uint8_t *)((bases)[(uint32_t)(index) >> 24] + (uintptr_t)((uint32_t)(index) & 0xffffff) * PAGE))
#define PAGE_FLAG(flags, offsets, index) ((flags)[(offsets)[(uint32_t)(index) >> 24] + ((uint32_t)(index) & 0xffffff)])
uint32_t xme_confirm_runs(uint64_t *keys, uint32_t n, const uint64_t *bases, const uint8_t *flags, const uint32_t *flag_offsets, uint32_t *bounds,
                          uint64_t *scratch, double *compared) {
  uint32_t classes = 0;
  double bytes = 0;
  uint32_t i = 0;
  while (i < n) {
    uint32_t end = i + 1;
    while (end < n && (keys[end] >> 32) == (keys[i] >> 32)) end++;
    if (end - i >= 2) {
      /* Partition [i, end): repeatedly take the first unplaced page as a class reference. */
      uint32_t left = end - i, out = 0;
      uint64_t *pending = scratch;
      memcpy(pending, keys + i, (size_t)left * 8);
      while (left > 0) {
        uint64_t ref = pending[0];
        const uint8_t *ref_page = PAGE_ADDR(bases, ref);
        uint32_t start = i + out, keep = 0;
        keys[i + out++] = ref;
        for (uint32_t j = 1; j < left; j++) {
          uint32_t index = (uint32_t)pending[j];
          int same = 0;
          if (PAGE_FLAG(flags, flag_offsets, index) == FLAG_PAIR && index >= (1u << 24)) {
            uint32_t partner = index - (1u << 24);
            same = partner == (uint32_t)ref || partner == (uint32_t)keys[i + out - 1];
          }
          if (!same) {
            bytes += PAGE;
            same = memcmp(PAGE_ADDR(bases, index), ref_page, PAGE) == 0;
          }
          if (same) keys[i + out++] = pending[j];
          else pending[keep++] = pending[j];
        }
        if (i + out - start >= 2) {
          bounds[2 * classes] = start;
          bounds[2 * classes + 1] = i + out;
          classes++;
        }
        left = keep;
      }
    }
    i = end;
  }
  compared[0] += bytes;
  return classes;
}
