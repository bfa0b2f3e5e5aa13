// The TFTP library's public face: a read-only server, its file sources and its packet codec.

export { cleanFileName } from "./names.js";
export { negotiate } from "./options.js";
export * from "./packet.js";
export { TftpServer, type TftpServerOptions, type TransferEvent, type TransferStart } from "./server.js";
export {
  bufferFile,
  directorySource,
  openRegularFile,
  type TftpFile,
  type TftpSource,
  TftpSourceError,
} from "./source.js";
export { TRANSITIONS, type TransferOutcome, type TransferState } from "./transfer.js";
