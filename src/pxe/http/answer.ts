// The answer a node gets: its own answer file, with report.webhook pointed at its event intake and
// its bearer token as a secret Authorization header, so the appliance's apply streams every step
// event to the server and the webhook sink redacts the token wherever it logs. Edited through the
// YAML document so the operator's file reaches the node as written, comments and all.
import { isMap, isSeq, parseDocument } from "yaml";

export function servedAnswer(text: string, webhook: string, token: string): string {
  const doc = parseDocument(text);
  doc.setIn(["report", "webhook"], webhook);
  const headers = doc.getIn(["report", "headers"]);
  if (isMap(headers)) {
    // One Authorization header: drop the operator's own, in whatever case it was written.
    for (const item of [...headers.items]) {
      const key = String((item.key as { value?: unknown })?.value ?? item.key);
      if (key.toLowerCase() === "authorization") headers.delete(item.key);
    }
  }
  doc.setIn(["report", "headers", "Authorization"], `Bearer ${token}`);
  const secret = doc.getIn(["report", "secretHeaders"]);
  if (isSeq(secret)) {
    const names = secret.items.map((i) => String((i as { value?: unknown })?.value ?? i).toLowerCase());
    if (!names.includes("authorization")) secret.add("authorization");
  }
  return doc.toString();
}
