// The local-boot script an installed node gets. BIOS: exit with a failure, so the BIOS tries its next
// device. UEFI with the netboot set's grub-local.efi: chain it (GRUB boots the installed ESP), and exit
// with a failure only if that fails; iPXE's exit alone sends EDK2 with the network first back to PXE.
// The real firmware runs it in test/pxe/chain/uefi-local-boot.pxe.test.ts.
import { describe, expect, it } from "vitest";
import { localBootScript, UEFI_LOCAL_LOADER } from "../../../src/pxe/ipxe-script.js";

const MAC = "52:54:00:12:34:56";
const lines = (s: string) => s.split("\n").filter((l) => l && !l.startsWith("#"));

describe("the local-boot script", () => {
  it("without a UEFI loader: marks the exit as meant, then exits with a failure", () => {
    expect(lines(localBootScript(MAC))).toEqual([
      `echo kvmstrap: ${MAC} is installed, booting from the local disk`,
      "set kvmstrap-local-boot 1",
      "exit 1",
    ]);
  });

  it("with grub-local.efi: UEFI iPXE chains it with the node named; BIOS iPXE and a failed chain exit 1", () => {
    const url = `http://10.0.0.1:8080/netboot/${UEFI_LOCAL_LOADER}`;
    const script = localBootScript(MAC, url);
    expect(script.startsWith("#!ipxe\n")).toBe(true);
    expect(lines(script)).toEqual([
      `echo kvmstrap: ${MAC} is installed, booting from the local disk`,
      "set kvmstrap-local-boot 1",
      `iseq \${platform} efi && chain --autofree ${url}?node=52%3A54%3A00%3A12%3A34%3A56 ||`,
      "exit 1",
    ]);
  });
});
