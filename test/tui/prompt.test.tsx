// The text prompt keeps every key, even when keys arrive faster than React renders (a paste, a
// serial line, a loaded machine): Enter right after the last character submits all of it.
import type { Key } from "ink";
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { dispatchKey, KeysContext, Prompt } from "../../src/tui/ui.js";
import { ascii } from "./helpers.js";

const plain = (over: Partial<Key>): Key => ({ ...({} as Key), ...over });

describe("Prompt", () => {
  it("submits everything typed before Enter, with no render in between", () => {
    const registry = new Set<Parameters<typeof dispatchKey>[0] extends Set<infer R> ? R : never>();
    const submitted: string[] = [];
    const r = render(
      <KeysContext.Provider value={registry}>
        <Prompt
          label="file"
          initial="x"
          width={80}
          theme={ascii}
          onSubmit={(v) => submitted.push(v)}
          onCancel={() => {}}
        />
      </KeysContext.Provider>,
    );
    // All in one synchronous burst: React has no chance to re-render between these keys.
    dispatchKey(registry, "", plain({ backspace: true }));
    for (const ch of "/tmp/answer.yaml") dispatchKey(registry, ch, plain({}));
    dispatchKey(registry, "", plain({ return: true }));
    expect(submitted).toEqual(["/tmp/answer.yaml"]);
    r.unmount();
  });
});
