// The live link to the server: the SSE form of GET /v1/events through EventSource, which reconnects
// by itself after a network error (the server restarting). Each connection opens with a `hello`:
// the page reloads GET /v1/status then, so whatever happened while it was away is caught up.
import type { ServeEvent } from "../node-table.js";

export type LinkState = "connecting" | "live" | "reconnecting";

export interface StreamHandlers {
  hello: () => void;
  event: (e: ServeEvent) => void;
  link: (s: LinkState) => void;
}

/** Opens the stream; returns a function that closes it. */
export function connectStream(url: string, on: StreamHandlers): () => void {
  let es: EventSource | undefined;
  let retry: number | undefined;
  let closed = false;
  const open = () => {
    on.link("connecting");
    es = new EventSource(url);
    es.addEventListener("hello", () => on.hello());
    es.onmessage = (m: MessageEvent<string>) => {
      try {
        on.event(JSON.parse(m.data) as ServeEvent);
      } catch {
        // A line that is not JSON is not an event the page can use.
      }
    };
    es.onerror = () => {
      on.link("reconnecting");
      // A refused or non-SSE answer closes an EventSource for good; try again on our own.
      if (es?.readyState === EventSource.CLOSED && !closed) {
        es = undefined;
        retry = window.setTimeout(open, 3000);
      }
    };
  };
  open();
  return () => {
    closed = true;
    window.clearTimeout(retry);
    es?.close();
  };
}
