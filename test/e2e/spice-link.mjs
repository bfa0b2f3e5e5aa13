// A SPICE client's link and ticket handshake on the main channel, over TLS, and nothing more: enough
// to ask a real spice-server whether it takes a password (the SPICE protocol's link stage: a
// SpiceLinkHeader and SpiceLinkMess from spice-protocol's protocol.h; the server answers with its
// 1024-bit RSA key, the client sends the NUL-terminated password encrypted with RSA-OAEP (SHA-1), the
// server answers one uint32: 0 for OK, 7 for permission denied). No SPICE client in Debian runs
// without a display, so the console test runs this in libvirtd's network namespace:
//   node spice-link.mjs HOST TLS_PORT CA_FILE < password
// prints {"linkError":N,"authResult":N} and exits 0 when the exchange completed (whatever the answer).
import { constants, publicEncrypt } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:tls";

const [host, port, caFile] = process.argv.slice(2);
const password = readFileSync(0, "utf8").replace(/\n$/, "");

const MAGIC = Buffer.from("REDQ");
const MAIN_CHANNEL = 1;
const LINK_MESS_BYTES = 18; // connection_id u32, channel_type u8, channel_id u8, 3 x u32
const PUBKEY_BYTES = 1024 / 8 + 34;

const socket = connect({ host, port: Number(port), ca: readFileSync(caFile) });
socket.setTimeout(10_000, () => socket.destroy(new Error("no answer within 10 s")));
let buffered = Buffer.alloc(0);
const waiters = [];
socket.on("data", (d) => {
  buffered = Buffer.concat([buffered, d]);
  pump();
});
socket.on("error", (e) => {
  console.error(`spice-link: ${e.message}`);
  process.exit(1);
});
function pump() {
  while (waiters.length && buffered.length >= waiters[0].n) {
    const w = waiters.shift();
    const out = buffered.subarray(0, w.n);
    buffered = buffered.subarray(w.n);
    w.resolve(out);
  }
}
const read = (n) =>
  new Promise((resolve) => {
    waiters.push({ n, resolve });
    pump();
  });

await new Promise((resolve) => socket.once("secureConnect", resolve));
const mess = Buffer.alloc(LINK_MESS_BYTES);
mess.writeUInt32LE(0, 0); // connection_id: a new session
mess.writeUInt8(MAIN_CHANNEL, 4);
mess.writeUInt8(0, 5);
mess.writeUInt32LE(0, 6); // no common caps: the server then expects the ticket straight away
mess.writeUInt32LE(0, 10);
mess.writeUInt32LE(LINK_MESS_BYTES, 14);
const header = Buffer.alloc(16);
MAGIC.copy(header, 0);
header.writeUInt32LE(2, 4);
header.writeUInt32LE(2, 8);
header.writeUInt32LE(mess.length, 12);
socket.write(Buffer.concat([header, mess]));

const replyHeader = await read(16);
if (!replyHeader.subarray(0, 4).equals(MAGIC)) throw new Error("not a SPICE server (no REDQ magic)");
const reply = await read(replyHeader.readUInt32LE(12));
const linkError = reply.readUInt32LE(0);
let authResult = null;
if (linkError === 0) {
  const key = reply.subarray(4, 4 + PUBKEY_BYTES);
  const ticket = publicEncrypt(
    { key, format: "der", type: "spki", padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
    Buffer.from(`${password}\0`),
  );
  socket.write(ticket);
  authResult = (await read(4)).readUInt32LE(0);
}
console.log(JSON.stringify({ linkError, authResult }));
socket.destroy();
