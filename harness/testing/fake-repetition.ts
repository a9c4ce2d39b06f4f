/**
 * The input of one repetition on fake guests (tick-loop tests): the parts every such test gives alike — the
 * fake image and kernel, 64 MiB, repetition 1, callbacks that say nothing, never stopped — under the test's own.
 */
import type { RepetitionInput } from '../experiment/tick-loop.ts';
import { fakeImage, fakeKernel } from './fake-backend.ts';

const quiet = (): void => undefined;

export function fakeRepetitionInput(
  input: Pick<RepetitionInput, 'scenario' | 'backend' | 'guests' | 'hasher' | 'emit'> & Partial<RepetitionInput>,
): RepetitionInput {
  return {
    image: fakeImage(),
    kernel: fakeKernel(),
    memoryMiB: 64,
    repetition: 1,
    say: quiet,
    note: quiet,
    warn: quiet,
    onLedger: quiet,
    stopRequested: () => false,
    ...input,
  };
}
