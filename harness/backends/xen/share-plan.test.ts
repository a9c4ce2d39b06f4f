/**
 * share-plan.ts against a model of Xen 4.17's memory sharing: frames with handles and reverse maps, and
 * share_pages' lock rule (the client frame's gfns may only be in the source's or the client's domain, else the
 * real hypervisor stops with "mm locking order violation"). The model is a stand-in at the hypercall seam; the
 * real calls run in the Xen test host (xen-backend.xen.test.ts, scenarios/guest-overhead-xen.json).
 */
import { describe, expect, it } from 'vitest';
import { FrameDomains, shareGroup, type NominatedPage } from './share-plan.ts';

/** Xen's sharing state: gfn → frame handle, frame handle → its gfns ("domid:gfn"). */
class XenModel {
  private next = 1n;
  readonly frameOf = new Map<string, bigint>();
  readonly gfnsOf = new Map<bigint, Set<string>>();
  violations: string[] = [];

  nominate(domid: number, gfn: number): bigint {
    const key = `${domid}:${gfn}`;
    const known = this.frameOf.get(key);
    if (known !== undefined) return known;
    const handle = this.next++;
    this.frameOf.set(key, handle);
    this.gfnsOf.set(handle, new Set([key]));
    return handle;
  }

  share(source: NominatedPage, client: NominatedPage): void {
    // As Xen: each handle must be the page's frame's now (XENMEM_SHARING_OP_S/C_HANDLE_INVALID otherwise).
    if (this.frameOf.get(`${source.domid}:${source.ref.gfn}`) !== source.handle) throw new Error('source handle invalid');
    if (this.frameOf.get(`${client.domid}:${client.ref.gfn}`) !== client.handle) throw new Error('client handle invalid');
    const gfns = this.gfnsOf.get(client.handle)!;
    for (const key of gfns) {
      const domid = Number(key.split(':')[0]);
      if (domid !== source.domid && domid !== client.domid) this.violations.push(`share ${source.domid}→${client.domid} moves a gfn of d${domid}`);
    }
    for (const key of gfns) {
      this.frameOf.set(key, source.handle);
      this.gfnsOf.get(source.handle)!.add(key);
    }
    this.gfnsOf.delete(client.handle);
  }

  /** A guest write: the gfn gets a private frame again. */
  unshare(domid: number, gfn: number): void {
    const key = `${domid}:${gfn}`;
    this.gfnsOf.get(this.frameOf.get(key)!)!.delete(key);
    this.frameOf.delete(key);
  }
}

function run(xen: XenModel, frames: FrameDomains, group: [domid: number, gfn: number][]) {
  const members = group.map(([domid, gfn]): NominatedPage => {
    const page = { ref: { guest: domid, gfn }, domid, handle: xen.nominate(domid, gfn) };
    frames.nominated(page);
    return page;
  });
  return shareGroup(members, frames, (s, c) => xen.share(s, c), String);
}

describe('share plan against Xen 4.17 share_pages lock rule', () => {
  it('shares a fresh group across and within domains in one frame', () => {
    const xen = new XenModel();
    const outcome = run(xen, new FrameDomains(), [
      [1, 10],
      [1, 11],
      [2, 10],
      [2, 12],
    ]);
    expect(outcome.shared).toHaveLength(4);
    expect(outcome.failed).toEqual([]);
    expect(new Set([...xen.frameOf.values()]).size).toBe(1);
    expect(xen.violations).toEqual([]);
  });

  it('merges two shared frames (the second tick of guest-overhead-xen) by a safe pair, where the naive order would crash Xen', () => {
    const xen = new XenModel();
    const frames = new FrameDomains();
    run(xen, frames, [
      [1, 10],
      [2, 10],
    ]); // frame A: d1:10, d2:10
    run(xen, frames, [
      [1, 11],
      [2, 11],
    ]); // frame B: d1:11, d2:11
    // Next tick the pages are equal: the group lists d1:10, d1:11 first. Naive: share(d1:10 → d1:11) moves d2:11 under d1's lock only.
    const naive = new XenModel();
    naive.nominate(1, 10);
    naive.nominate(2, 10);
    naive.nominate(1, 11);
    naive.nominate(2, 11);
    naive.share({ ref: { guest: 1, gfn: 10 }, domid: 1, handle: 1n }, { ref: { guest: 2, gfn: 10 }, domid: 2, handle: 2n });
    naive.share({ ref: { guest: 1, gfn: 11 }, domid: 1, handle: 3n }, { ref: { guest: 2, gfn: 11 }, domid: 2, handle: 4n });
    naive.share({ ref: { guest: 1, gfn: 10 }, domid: 1, handle: 1n }, { ref: { guest: 1, gfn: 11 }, domid: 1, handle: 3n });
    expect(naive.violations).toHaveLength(1); // the model sees what crashed the real hypervisor

    const outcome = run(xen, frames, [
      [1, 10],
      [1, 11],
      [2, 10],
      [2, 11],
    ]);
    expect(xen.violations).toEqual([]);
    expect(outcome.failed).toEqual([]);
    expect(outcome.shared).toHaveLength(4);
    expect(new Set([...xen.frameOf.values()]).size).toBe(1);
  });

  it('refuses, with the reason, a merge that no pair can make safely (three domains)', () => {
    const xen = new XenModel();
    const frames = new FrameDomains();
    run(xen, frames, [
      [1, 10],
      [2, 10],
      [3, 10],
    ]); // frame A in d1, d2, d3
    run(xen, frames, [
      [1, 11],
      [2, 11],
      [3, 11],
    ]); // frame B in d1, d2, d3
    const outcome = run(xen, frames, [
      [1, 10],
      [1, 11],
    ]);
    expect(xen.violations).toEqual([]);
    expect(outcome.shared).toEqual([{ guest: 1, gfn: 10 }]);
    expect(outcome.failed).toEqual([{ pages: [{ guest: 1, gfn: 11 }], reason: expect.stringMatching(/third domain.*mm-locks\.h:80/) }]);
  });

  it('stays safe over many ticks of random groups, writes and merges (never a violation, nothing shared twice)', () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const xen = new XenModel();
    const frames = new FrameDomains();
    const failures: string[] = [];
    for (let tick = 0; tick < 200; tick++) {
      const group: [number, number][] = [];
      for (let i = 0; i < 2 + random(5); i++) group.push([1 + random(3), random(12)]);
      const unique = [...new Map(group.map((g) => [`${g[0]}:${g[1]}`, g])).values()];
      const outcome = run(xen, frames, unique);
      expect(outcome.shared.length + outcome.failed.length).toBe(unique.length);
      failures.push(...outcome.failed.map((f) => f.reason));
      expect(new Set(outcome.shared.map((ref) => xen.frameOf.get(`${ref.guest}:${ref.gfn}`))).size).toBeLessThanOrEqual(1);
      if (random(3) === 0) {
        const [domid, gfn] = unique[random(unique.length)]!;
        if (xen.frameOf.has(`${domid}:${gfn}`)) xen.unshare(domid, gfn);
      }
    }
    expect(xen.violations).toEqual([]);
    expect(failures.filter((reason) => !/third domain/.test(reason))).toEqual([]); // no stale handle, no other refusal
  });
});
