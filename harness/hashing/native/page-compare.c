/*
 * The semantic strategy's byte comparison: page k of a range in every guest against guest 0's page k, in C so
 * that it runs at memcmp's speed (glibc's, vectorized and dispatched at run time) and not at a JS-to-C crossing
 * per page (Buffer.compare). Built and loaded like page-scan.c (native-build.ts, koffi), one call per range.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define PAGE 4096

/*
 * For each page k of [0, count): first_diff[k] = the first guest g ≥ 1 whose page k (bases[g] + k * 4096)
 * differs from guest 0's, 0 when every guest has the same bytes. Returns the pages identical in all guests;
 * compared[0] += bytes compared (a whole page per compare, up to and including the first that differs).
 */
uint32_t xme_compare_across_some(uint32_t guests, const uint64_t *bases, uint32_t count, const uint8_t *which, uint16_t *first_diff, double *compared);

uint32_t xme_compare_across(uint32_t guests, const uint64_t *bases, uint32_t count, uint16_t *first_diff, double *compared) {
  return xme_compare_across_some(guests, bases, count, NULL, first_diff, compared);
}

/*
 * The pages xme_compare_across found differing, partitioned into classes of identical bytes: for each page k
 * with first_diff[k] = d ≠ 0, representative[k * guests + g] = the first guest of g's class (guests 0 … d − 1
 * are guest 0's: first_diff says so), each later guest compared with every class's first guest in the order
 * the classes were made; paired[k] = 1 if some class has two guests or more. Pages with first_diff[k] = 0 are
 * not touched. Returns the pages paired; compared[0] += bytes compared (a whole page per compare).
 */
uint32_t xme_partition_across(uint32_t guests, const uint64_t *bases, uint32_t count, const uint16_t *first_diff, uint16_t *representative,
                              uint8_t *paired, double *compared) {
  uint32_t pairedPages = 0;
  double bytes = 0;
  uint16_t firsts[65536];
  for (uint32_t k = 0; k < count; k++) {
    uint16_t d = first_diff[k];
    if (!d) continue;
    uint16_t *rep = representative + (uintptr_t)k * guests;
    uint32_t classes = 1;
    firsts[0] = 0;
    for (uint32_t g = 0; g < d; g++) rep[g] = 0;
    uint8_t pairs = d > 1;
    for (uint32_t g = d; g < guests; g++) {
      const uint8_t *page = (const uint8_t *)(uintptr_t)bases[g] + (uintptr_t)k * PAGE;
      uint32_t c = 0;
      for (; c < classes; c++) {
        bytes += PAGE;
        if (memcmp((const uint8_t *)(uintptr_t)bases[firsts[c]] + (uintptr_t)k * PAGE, page, PAGE) == 0) break;
      }
      if (c < classes) {
        rep[g] = firsts[c];
        pairs = 1;
      } else {
        firsts[classes++] = (uint16_t)g;
        rep[g] = (uint16_t)g;
      }
    }
    paired[k] = pairs;
    if (pairs) pairedPages++;
  }
  compared[0] += bytes;
  return pairedPages;
}

/*
 * xme_compare_across for the pages k with which[k] = 1 only (the rest: first_diff[k] = 0, not read), in one call
 * however scattered they are; which = NULL: every page. Returns the pages compared and identical in all guests.
 */
uint32_t xme_compare_across_some(uint32_t guests, const uint64_t *bases, uint32_t count, const uint8_t *which, uint16_t *first_diff, double *compared) {
  uint32_t identical = 0;
  double bytes = 0;
  for (uint32_t k = 0; k < count; k++) {
    first_diff[k] = 0;
    if (which && !which[k]) continue;
    const uint8_t *reference = (const uint8_t *)(uintptr_t)bases[0] + (uintptr_t)k * PAGE;
    uint16_t differs = 0;
    for (uint32_t g = 1; g < guests; g++) {
      bytes += PAGE;
      if (memcmp((const uint8_t *)(uintptr_t)bases[g] + (uintptr_t)k * PAGE, reference, PAGE) != 0) {
        differs = (uint16_t)g;
        break;
      }
    }
    first_diff[k] = differs;
    if (!differs) identical++;
  }
  compared[0] += bytes;
  return identical;
}
