import { describe, expect, it } from 'vitest';
import { XmeError } from '../util/errors.ts';
import { KSM_DEFAULT_SETTINGS, parseKsmSettings, settingsAsKnobs } from './ksm-settings.ts';

const field = (name: string) => `strategies[1].options.${name}`;

function failure(raw: Record<string, unknown>): XmeError {
  try {
    parseKsmSettings(raw, field);
  } catch (error) {
    expect(error).toBeInstanceOf(XmeError);
    return error as XmeError;
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
}

describe('parseKsmSettings', () => {
  it('fills the defaults', () => {
    expect(parseKsmSettings({}, field)).toEqual({ pagesToScan: 5000, sleepMillisecs: 20, useZeroPages: true, smartScan: true, advisorMode: 'none' });
    expect(parseKsmSettings({}, field)).toEqual(KSM_DEFAULT_SETTINGS);
  });

  it('takes every option', () => {
    expect(parseKsmSettings({ pages_to_scan: 1, sleep_millisecs: 0, use_zero_pages: false, smart_scan: false, advisor_mode: 'none' }, field)).toEqual({
      pagesToScan: 1,
      sleepMillisecs: 0,
      useZeroPages: false,
      smartScan: false,
      advisorMode: 'none',
    });
    expect(parseKsmSettings({ advisor_mode: 'scan-time', sleep_millisecs: 50 }, field).advisorMode).toBe('scan-time');
  });

  it.each([
    [{ pages_to_scan: 0 }, 'pages_to_scan', 'integer from 1'],
    [{ pages_to_scan: 2.5 }, 'pages_to_scan', 'integer'],
    [{ pages_to_scan: '5000' }, 'pages_to_scan', 'integer'],
    [{ pages_to_scan: 2 ** 32 }, 'pages_to_scan', '4294967295'],
    [{ sleep_millisecs: -1 }, 'sleep_millisecs', 'integer from 0'],
    [{ use_zero_pages: 1 }, 'use_zero_pages', 'true or false'],
    [{ smart_scan: 'yes' }, 'smart_scan', 'true or false'],
    [{ advisor_mode: 'fast' }, 'advisor_mode', '"none" or "scan-time"'],
    [{ advisor_mode: 'scan-time', pages_to_scan: 100 }, 'pages_to_scan', 'advisor chooses it'],
    [{ pages_to_scna: 100 }, 'pages_to_scna', 'is not a KSM option'],
  ])('refuses %j naming the field', (raw, name, problem) => {
    const error = failure(raw);
    expect(error.message).toContain(`strategies[1].options.${name}`);
    expect(error.message).toContain(problem);
    expect(error.hint).toBeTruthy();
  });

  it('maps settings to knob values', () => {
    expect(settingsAsKnobs(KSM_DEFAULT_SETTINGS)).toEqual({
      advisor_mode: 'none',
      pages_to_scan: '5000',
      sleep_millisecs: '20',
      use_zero_pages: '1',
      smart_scan: '1',
    });
  });
});
