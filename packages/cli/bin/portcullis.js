#!/usr/bin/env node
// Shim so the workspace bin exists before the first build; `npm install` runs `tsc -b` (prepare).
import '../dist/bin.js';
