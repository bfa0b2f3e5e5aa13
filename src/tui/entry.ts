// What `kvmstrap tui` runs, as one entry point: `npm run build` bundles it (with Ink and React) into
// dist/tui-bundle.mjs, so the command loads one file instead of a few hundred small modules (on the
// live system they come out of a squashfs, under TCG at about 20x the cost here). kvmstrap tui loads
// the bundle, and these modules directly when it is absent. Detection is here too (it runs once the
// first screen is drawn), so the modules it needs are not loaded a second time from dist/.
export { detectMachine } from "../app/inspect.js";
export { draftFrom } from "./draft.js";
export { runTui } from "./run.js";
export { makeSession } from "./session.js";
