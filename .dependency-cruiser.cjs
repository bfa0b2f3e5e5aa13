// The one-way import graph of src/, checked by `npm run depcheck` (part of `npm test`).
//   core <- host <- detect <- checks <- answer <- plan <- apply / vm <- fleet <- app <- cli, tui, pxe (serve)
// The protocol libraries (src/pxe/dhcp4, src/pxe/tftp) stand apart: they use src/core only.
// A stage may import the stages before it, never one after it: detection cannot know about plans,
// the engine cannot know about its front ends, and only the front ends call the use-case layer.
const LAYERS = [
  "core",
  "host",
  "detect",
  "checks",
  "answer",
  "plan",
  "apply",
  "vm",
  "fleet",
  "app",
  "tui",
  "cli",
];

/** Stages that a folder must not import. `vm` and `apply` may use each other's ports (VM actions). */
const FORBIDDEN = {
  core: LAYERS.filter((l) => l !== "core"),
  host: ["detect", "checks", "answer", "plan", "apply", "vm", "fleet", "app", "tui", "cli"],
  detect: ["checks", "answer", "plan", "apply", "vm", "fleet", "app", "tui", "cli"],
  checks: ["answer", "plan", "apply", "vm", "fleet", "app", "tui", "cli"],
  answer: ["plan", "apply", "fleet", "app", "tui", "cli"],
  plan: ["apply", "fleet", "app", "tui", "cli"],
  apply: ["fleet", "app", "tui", "cli"],
  vm: ["fleet", "app", "tui", "cli"],
  // The fleet (inventory, layered answers, rollouts, its store) sits above the engine it hands
  // answers to and below the use cases that the CLI, the TUI and the server call.
  fleet: ["app", "tui", "cli"],
  app: ["tui", "cli"],
  tui: ["cli"],
};

module.exports = {
  forbidden: [
    ...Object.entries(FORBIDDEN).map(([from, to]) => ({
      name: `${from}-is-below-${to.join("-")}`,
      comment: `src/${from} is an earlier stage than src/{${to.join(",")}}: it must not import them`,
      severity: "error",
      from: { path: `^src/${from}/` },
      to: { path: `^src/(${to.join("|")})/` },
    })),
    {
      name: "protocols-know-nothing-of-the-app",
      comment: "src/pxe/{dhcp4,tftp} read as libraries: they may use src/core, nothing else of kvmstrap",
      severity: "error",
      from: { path: "^src/pxe/(dhcp4|tftp)/" },
      to: { path: "^src/(?!core/|pxe/(dhcp4|tftp)/)" },
    },
    {
      name: "only-front-ends-import-pxe",
      comment: "the PXE server is a front end: the engine below it does not know it exists",
      severity: "error",
      from: { path: "^src/(core|host|detect|checks|answer|plan|apply|vm|fleet|app)/" },
      to: { path: "^src/pxe/" },
    },
    {
      name: "front-ends-call-the-app-layer",
      comment: "the CLI and the TUI reach the engine's apply and build no adapters: src/app does both",
      severity: "error",
      from: { path: "^src/(cli|tui)/" },
      to: {
        path: "^src/(apply/(engine|execute|undo)|host/(target|commands)|vm/virsh-libvirt)\\.ts$",
        dependencyTypesNot: ["type-only"],
      },
    },
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "no-unresolvable",
      severity: "error",
      from: { path: "^src/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      extensions: [".ts", ".tsx", ".js"],
      exportsFields: ["exports"],
      conditionNames: ["import", "node", "default"],
    },
  },
};
