/**
 * Guest image recipes: which real Debian kernel package a guest boots. The kernel ABI is resolved at build
 * time from Debian's meta-package (linux-image-<flavour>), because the security archive replaces old ABIs;
 * the exact package versions end up in the image manifest, so a run always says what it booted.
 */
import { XmeError } from '../util/errors.ts';

export interface ImageRecipe {
  name: string;
  description: string;
  /** Debian kernel flavour: linux-image-<abi>-<flavour>. */
  flavour: string;
  /** A fixed ABI such as "6.1.0-56", or undefined to take the one the meta-package depends on now. */
  abi?: string;
}

export const recipes: Record<string, ImageRecipe> = {
  cloud: {
    name: 'cloud',
    description: 'Debian 12 cloud kernel (linux-image-*-cloud-amd64): small, boots in ~3.5 s under TCG',
    flavour: 'cloud-amd64',
  },
  generic: {
    name: 'generic',
    description: 'Debian 12 generic kernel (linux-image-*-amd64): the everyday kernel, ~2x slower to boot',
    flavour: 'amd64',
  },
};

export const defaultImageName = 'cloud';

/**
 * A kernel image pinned to one kernel build: `<recipe>@<abi>`, e.g. `cloud@6.1.0-56`, is the recipe `cloud`
 * with that ABI, cached under its own name beside the unpinned one (which follows the meta-package). Mixed
 * fleets boot guests of two builds side by side this way (scenario field `guestImages`).
 */
const PINNED = /^([a-z][a-z0-9-]*)@(\d+\.\d+\.\d+-\d+)$/;

/** Whether `name` is a kernel image: a recipe, or a recipe pinned to an ABI (`cloud@6.1.0-56`). */
export function isKernelImage(name: string): boolean {
  const pinned = PINNED.exec(name);
  return Object.hasOwn(recipes, pinned ? pinned[1]! : name);
}

export function recipeByName(name: string): ImageRecipe {
  const pinned = PINNED.exec(name);
  const recipe = Object.hasOwn(recipes, pinned ? pinned[1]! : name) ? recipes[pinned ? pinned[1]! : name] : undefined;
  if (!recipe) {
    throw new XmeError(
      `unknown guest image '${name}'`,
      `known images: ${Object.keys(recipes).join(', ')}, or one pinned to a kernel ABI such as cloud@6.1.0-56 (xme image list)`,
    );
  }
  return pinned ? { ...recipe, name, abi: pinned[2]! } : recipe;
}
