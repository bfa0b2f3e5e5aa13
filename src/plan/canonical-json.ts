// Moved to src/core/canonical-json.ts (one home); this re-export keeps older imports working.
export { canonicalJson } from "../core/canonical-json.js";
