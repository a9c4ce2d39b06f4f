/**
 * Which guest RAM a set of strategies needs: anonymous mergeable RAM as soon as one of them is a host-side
 * merger (KSM), which only merges anonymous memory; the shared RAM file otherwise (zero-copy reads). The
 * accounted strategies read either kind, so they can score guests that KSM merges.
 */
import type { GuestRamKind } from '../backends/types.ts';
import { createStrategy } from '../../strategies/registry.ts';
import type { StrategySpec } from '../scenario/scenario.ts';

export function guestRamFor(strategies: readonly StrategySpec[]): GuestRamKind {
  const needs = strategies.map((spec) => createStrategy(spec.name, spec.options).guestRam);
  return needs.includes('anonymous-mergeable') ? 'anonymous-mergeable' : 'shared-file';
}
