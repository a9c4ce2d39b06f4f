import { describe, expect, it } from 'vitest';
import { isKernelImage, recipeByName } from './recipes.ts';

describe('kernel image recipes', () => {
  it('follow the meta-package unless pinned to an ABI as <recipe>@<abi>, cached under that name', () => {
    expect(recipeByName('cloud')).toMatchObject({ name: 'cloud', flavour: 'cloud-amd64' });
    expect(recipeByName('cloud').abi).toBeUndefined();
    expect(recipeByName('cloud@6.1.0-56')).toMatchObject({ name: 'cloud@6.1.0-56', flavour: 'cloud-amd64', abi: '6.1.0-56' });
    expect(recipeByName('generic@6.1.0-55')).toMatchObject({ flavour: 'amd64', abi: '6.1.0-55' });
    expect(isKernelImage('cloud@6.1.0-56')).toBe(true);
  });

  it('refuses an unknown recipe or an ABI of another form', () => {
    for (const name of ['kvm', 'kvm@6.1.0-56', 'cloud@6.1', 'cloud@latest', 'cloud@6.1.0-56-cloud-amd64']) {
      expect(isKernelImage(name), name).toBe(false);
      expect(() => recipeByName(name), name).toThrow(`unknown guest image '${name}'`);
    }
  });
});
