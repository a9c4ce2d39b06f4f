/*
 * memshr-check: does Xen memory sharing really work in this hypervisor?  (Xen test host tool)
 *
 *   memshr-check enable DOMID
 *       xc_memshr_control(DOMID, 1) and print its return value and errno.
 *       0 = sharing enabled; ENOSYS = hypervisor built without CONFIG_MEM_SHARING;
 *       EOPNOTSUPP = the cpu_has_vmx gate (or not an HVM/PVH domain); ENODEV = no HAP.
 *   memshr-check share DOMA DOMB FIRST_GFN COUNT
 *       enable sharing on both, read gfns FIRST_GFN..+COUNT of both domains through
 *       xenforeignmemory; for every gfn whose 4 KiB are byte-identical (and not all zero
 *       unless ZERO=1 in the environment) nominate both pages, compare them again (a guest
 *       write after nomination invalidates the handle) and share them.  Prints the
 *       counters before/after: xc_sharing_freed_pages, xc_sharing_used_frames, and per-domain
 *       shr_pages.  Never shares pages whose bytes differ.
 *
 * Build (on the host, against libxen-dev):
 *   gcc -O2 -Wall -o memshr-check memshr-check.c -lxenctrl -lxenforeignmemory
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>

#define PAGE 4096UL
#define BATCH 256

static void counters(xc_interface *xch, const char *when, uint32_t a, uint32_t b)
{
    xc_dominfo_t ia, ib;
    long freed = xc_sharing_freed_pages(xch), used = xc_sharing_used_frames(xch);
    unsigned long sa = 0, sb = 0;
    if (xc_domain_getinfo(xch, a, 1, &ia) == 1 && ia.domid == a) sa = ia.nr_shared_pages;
    if (b != a && xc_domain_getinfo(xch, b, 1, &ib) == 1 && ib.domid == b) sb = ib.nr_shared_pages;
    printf("%s: freed_pages=%ld used_frames=%ld shr_pages[%u]=%lu", when, freed, used, a, sa);
    if (b != a) printf(" shr_pages[%u]=%lu", b, sb);
    printf("\n");
}

static int enable(xc_interface *xch, uint32_t dom)
{
    errno = 0;
    int rc = xc_memshr_control(xch, dom, 1);
    int e = errno;
    printf("xc_memshr_control(dom %u, enable=1) = %d errno=%d (%s)\n", dom, rc, e, rc ? strerror(e) : "ok");
    return rc;
}

static int is_zero(const unsigned char *p)
{
    for (size_t i = 0; i < PAGE; i++) if (p[i]) return 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s enable DOMID | share DOMA DOMB FIRST_GFN COUNT\n", argv[0]);
        return 2;
    }
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) { fprintf(stderr, "xc_interface_open failed: %s (not in a Xen dom0?)\n", strerror(errno)); return 3; }

    if (!strcmp(argv[1], "enable")) {
        uint32_t dom = strtoul(argv[2], NULL, 0);
        int rc = enable(xch, dom);
        counters(xch, "counters", dom, dom);
        xc_interface_close(xch);
        return rc ? 1 : 0;
    }
    if (strcmp(argv[1], "share") || argc < 6) {
        fprintf(stderr, "usage: %s share DOMA DOMB FIRST_GFN COUNT\n", argv[0]);
        return 2;
    }
    uint32_t a = strtoul(argv[2], NULL, 0), b = strtoul(argv[3], NULL, 0);
    unsigned long first = strtoul(argv[4], NULL, 0), count = strtoul(argv[5], NULL, 0);
    int zero_ok = getenv("ZERO") && !strcmp(getenv("ZERO"), "1");
    if (enable(xch, a) || enable(xch, b)) { xc_interface_close(xch); return 1; }
    counters(xch, "before", a, b);

    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    if (!fm) { fprintf(stderr, "xenforeignmemory_open: %s\n", strerror(errno)); return 3; }
    unsigned long identical = 0, differ = 0, unmapped = 0, zero = 0, shared = 0, failed = 0, changed = 0;
    int first_err = 0;
    xen_pfn_t ga[BATCH], gb[BATCH];
    int ea[BATCH], eb[BATCH];
    for (unsigned long base = first; base < first + count; base += BATCH) {
        size_t n = first + count - base < BATCH ? first + count - base : BATCH;
        for (size_t i = 0; i < n; i++) ga[i] = gb[i] = base + i;
        unsigned char *pa = xenforeignmemory_map(fm, a, PROT_READ, n, ga, ea);
        unsigned char *pb = xenforeignmemory_map(fm, b, PROT_READ, n, gb, eb);
        if (!pa || !pb) {
            fprintf(stderr, "xenforeignmemory_map at gfn %#lx: %s\n", base, strerror(errno));
            if (pa) xenforeignmemory_unmap(fm, pa, n);
            if (pb) xenforeignmemory_unmap(fm, pb, n);
            unmapped += n;
            continue;
        }
        /* Pass 1: candidates = byte-identical pairs (then drop the mappings: a foreign mapping
         * holds a page reference and nomination requires none). */
        unsigned char same[BATCH];
        uint64_t ha[BATCH], hb[BATCH];
        for (size_t i = 0; i < n; i++) {
            same[i] = 0;
            if (ea[i] || eb[i]) { unmapped++; continue; }
            if (memcmp(pa + i * PAGE, pb + i * PAGE, PAGE)) { differ++; continue; }
            identical++;
            if (!zero_ok && is_zero(pa + i * PAGE)) { zero++; continue; }
            same[i] = 1;
        }
        xenforeignmemory_unmap(fm, pa, n);
        xenforeignmemory_unmap(fm, pb, n);
        /* Pass 2: nominate both pages.  From here a guest write unshares the page and
         * invalidates its handle, so share_gfns below fails instead of merging changed bytes. */
        for (size_t i = 0; i < n; i++) {
            if (!same[i]) continue;
            unsigned long gfn = base + i;
            if (xc_memshr_nominate_gfn(xch, a, gfn, &ha[i]) || xc_memshr_nominate_gfn(xch, b, gfn, &hb[i])) {
                if (!first_err) first_err = errno;
                failed++; same[i] = 0;
            }
        }
        /* Pass 3: compare again after nomination (read-only mappings do not unshare). */
        pa = xenforeignmemory_map(fm, a, PROT_READ, n, ga, ea);
        pb = xenforeignmemory_map(fm, b, PROT_READ, n, gb, eb);
        for (size_t i = 0; i < n; i++) {
            if (!same[i]) continue;
            if (!pa || !pb || ea[i] || eb[i] || memcmp(pa + i * PAGE, pb + i * PAGE, PAGE)) {
                same[i] = 0; changed++;
            }
        }
        if (pa) xenforeignmemory_unmap(fm, pa, n);
        if (pb) xenforeignmemory_unmap(fm, pb, n);
        /* Pass 4: share. */
        for (size_t i = 0; i < n; i++) {
            if (!same[i]) continue;
            unsigned long gfn = base + i;
            if (xc_memshr_share_gfns(xch, a, gfn, ha[i], b, gfn, hb[i])) {
                if (!first_err) first_err = errno;
                failed++; continue;
            }
            shared++;
        }
    }
    xenforeignmemory_close(fm);
    printf("gfns %#lx..%#lx: identical=%lu (all-zero skipped=%lu) differ=%lu unmapped=%lu "
           "changed_after_nominate=%lu shared=%lu failed=%lu%s%s\n", first, first + count - 1, identical,
           zero, differ, unmapped, changed, shared, failed, failed ? " first_error=" : "", failed ? strerror(first_err) : "");
    counters(xch, "after", a, b);
    xc_interface_close(xch);
    return shared ? 0 : 1;
}
