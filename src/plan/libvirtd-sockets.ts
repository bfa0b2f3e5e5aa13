// libvirtd restarted with the socket units that are enabled now (Debian 12's socket activation).
//
// systemd refuses to start a socket unit while the service it activates runs ("Socket service
// libvirtd.service already active, refusing"), so `systemctl enable --now libvirtd-tls.socket` fails
// on any host whose libvirtd is up, and a socket started later is not handed to a libvirtd already
// running. Plans therefore only enable or disable the sockets, and this one step makes them listen:
// libvirtd and its sockets stopped together (no connection can start libvirtd in between), the local
// sockets and each enabled TCP/TLS socket started, then libvirtd started again if it was running (it
// gets every socket and reads its settings). Guests keep running: the unit's KillMode=process.
export const LIBVIRTD_SOCKETS_RESTART: readonly string[] = [
  "sh",
  "-c",
  [
    "set -e",
    "was=0; if systemctl is-active --quiet libvirtd.service; then was=1; fi",
    "systemctl stop libvirtd.service libvirtd.socket",
    "systemctl start libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket",
    "for s in libvirtd-tls.socket libvirtd-tcp.socket; do if systemctl is-enabled --quiet $s; then systemctl start $s; fi; done",
    'if [ "$was" = 1 ]; then systemctl start libvirtd.service; fi',
  ].join("\n"),
];

/** Whether an enabled TLS socket listens (false: the restart above has yet to start it). */
export const TLS_SOCKET_LISTENS: readonly string[] = [
  "systemctl",
  "is-active",
  "--quiet",
  "libvirtd-tls.socket",
];
