/*
 * The semantic strategy's byte comparison: page k of a range in every guest against guest 0's page k, in C so
 * that it runs at memcmp's speed (glibc's, vectorized and dispatched at run time) and not at a JS-to-C crossing
 * per page (Buffer.compare). Built and loaded like page-scan.c (native-build.ts, koffi), one call per range.
 */
#include <stdint.h>
#include <string.h>

#define PAGE 4096

/*
 * For each page k of [0, count): first_diff[k] = the first guest g ≥ 1 whose page k (bases[g] + k * 4096)
 * differs from guest 0's, 0 when every guest has the same bytes. Returns the pages identical in all guests;
 * compared[0] += bytes compared (a whole page per compare, up to and including the first that differs).
 */
uint32_t xme_compare_across(uint32_t guests, const uint64_t *bases, uint32_t count, uint16_t *first_diff, double *compared) {
  uint32_t identical = 0;
  double bytes = 0;
  for (uint32_t k = 0; k < count; k++) {
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
