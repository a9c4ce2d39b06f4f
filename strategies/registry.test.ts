/** The strategies xme knows: what every one of them must offer the runner. */
import { describe, expect, it } from 'vitest';
import { checkDeclarations } from '../harness/experiment/repetition-metrics.ts';
import { strategyFactories } from './registry.ts';
import { KSM_LEDGER_METRICS } from '../harness/sharing/ksm-ledger.ts';

describe('strategy registry', () => {
  it('every registered strategy declares its figures with a unit and a method, none named like the runner’s own', () => {
    for (const factory of strategyFactories) {
      for (const options of [{}, ...(factory.name === 'semantic' ? [{ rodata: true }] : [])]) {
        const strategy = factory.create(options);
        // Strategies that find pages report figures; `none` has none, and ksm's are its ledger's (checked below).
        if (!['none', 'ksm'].includes(factory.name)) expect(Object.keys(strategy.declaredMetrics).length).toBeGreaterThan(0);
        for (const definition of Object.values(strategy.declaredMetrics)) {
          expect(definition.unit).not.toBe('');
          expect(definition.method).not.toBe('');
        }
        expect(() => checkDeclarations(factory.name, strategy.declaredMetrics)).not.toThrow();
      }
    }
    for (const definition of Object.values(KSM_LEDGER_METRICS)) expect(definition.unit && definition.method).toBeTruthy();
    expect(() => checkDeclarations('the KSM ledger', KSM_LEDGER_METRICS)).not.toThrow();
    expect(Object.keys(strategyFactories.find((f) => f.name === 'semantic')!.create({ rodata: true }).declaredMetrics)).toEqual([
      'kernel_code_pages',
      'kernel_code_identical_pages',
      'kernel_rodata_pages',
      'kernel_rodata_identical_pages',
      'kernel_builds',
    ]);
  });
});
