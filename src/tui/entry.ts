// The TUI's single entry point: `npm run build` bundles it (with Ink and React) into
// dist/tui-bundle.mjs, because loading Ink's few hundred small modules one by one took ~0.5 s of a
// 0.9 s first paint. kvmstrap tui loads the bundle, and these modules directly when it is absent.
export { draftFrom } from "./draft.js";
export { runTui } from "./run.js";
export { makeSession } from "./session.js";
