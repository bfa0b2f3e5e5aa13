// The answer a node gets: its own answer file, with report.webhook pointed at its event intake and
// its bearer token as a secret Authorization header, so the appliance's apply streams every step
// event to the server and the webhook sink redacts the token wherever it logs. Edited through the
// YAML document so the operator's file reaches the node as written, comments and all.
//
// Parsing is the costly part (1,000 nodes fetching one answer file re-parsed it 1,000 times), so each
// answer is parsed and edited once, with stand-ins for the webhook and the token; a request clones
// that document and sets the two values in place (the same nodes, so the same bytes as editing a
// fresh parse).
import { type Document, isMap, isSeq, parseDocument } from "yaml";

/** An answer as the nodes file holds it; one object per entry, kept for the server's life. */
export interface AnswerSource {
  text: string;
}

const prepared = new WeakMap<AnswerSource, Document.Parsed>();

function prepare(text: string): Document.Parsed {
  const doc = parseDocument(text);
  doc.setIn(["report", "webhook"], "webhook");
  const headers = doc.getIn(["report", "headers"]);
  if (isMap(headers)) {
    // One Authorization header: drop the operator's own, in whatever case it was written.
    for (const item of [...headers.items]) {
      const key = String((item.key as { value?: unknown })?.value ?? item.key);
      if (key.toLowerCase() === "authorization") headers.delete(item.key);
    }
  }
  doc.setIn(["report", "headers", "Authorization"], "Bearer token");
  const secret = doc.getIn(["report", "secretHeaders"]);
  if (isSeq(secret)) {
    const names = secret.items.map((i) => String((i as { value?: unknown })?.value ?? i).toLowerCase());
    if (!names.includes("authorization")) secret.add("authorization");
  }
  return doc;
}

export function servedAnswer(answer: AnswerSource, webhook: string, token: string): string {
  let base = prepared.get(answer);
  if (!base) {
    base = prepare(answer.text);
    prepared.set(answer, base);
  }
  const doc = base.clone();
  doc.setIn(["report", "webhook"], webhook);
  doc.setIn(["report", "headers", "Authorization"], `Bearer ${token}`);
  return doc.toString();
}
