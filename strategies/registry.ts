/**
 * The strategies xme knows. A new strategy is one file exporting a StrategyFactory, plus one line here.
 */
import { XmeError } from '../harness/util/errors.ts';
import { contentFactory } from './content.ts';
import { contentIncrementalFactory } from './content-incremental.ts';
import { hybridFactory } from './hybrid.ts';
import { ksmFactory } from './ksm.ts';
import { noneFactory } from './none.ts';
import { semanticFactory } from './semantic.ts';
import { semanticFreeFactory } from './semantic-free.ts';
import { semanticPageCacheFactory } from './semantic-pagecache.ts';
import { semanticUnionFactory } from './semantic-union.ts';
import type { Strategy, StrategyFactory } from './types.ts';

export const strategyFactories: readonly StrategyFactory[] = [
  semanticFactory,
  contentFactory,
  contentIncrementalFactory,
  hybridFactory,
  semanticPageCacheFactory,
  semanticFreeFactory,
  semanticUnionFactory,
  ksmFactory,
  noneFactory,
];

export function strategyFactory(name: string): StrategyFactory {
  const factory = strategyFactories.find((f) => f.name === name);
  if (!factory) {
    throw new XmeError(`unknown strategy '${name}'`, `known strategies: ${strategyFactories.map((f) => f.name).join(', ')}`);
  }
  return factory;
}

export function createStrategy(name: string, options: Record<string, unknown> = {}): Strategy {
  const factory = strategyFactory(name);
  for (const option of Object.keys(options)) {
    if (!(option in factory.options)) {
      throw new XmeError(`strategy ${name} has no option '${option}'`, `its options: ${Object.keys(factory.options).join(', ') || 'none'}`);
    }
  }
  return factory.create(options);
}
