#!/usr/bin/env node
// The `xme` command. The harness is TypeScript run through tsx's loader, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../harness/cli/main.ts');
