// Why a native addon: a DHCP server on a multi-homed host must answer only clients on its
// provisioning interface, and a DISCOVER is a limited broadcast (to 255.255.255.255) from 0.0.0.0.
// Node's dgram cannot tell which interface a datagram came in on (no IP_PKTINFO, nodejs/node#59670)
// and cannot set SO_BINDTODEVICE. Measured here with two bridges in one network namespace
// (test/pxe/dhcp4/socket.test.ts): a socket bound to 0.0.0.0:67 or to 255.255.255.255:67 receives
// the broadcasts of both bridges, and its broadcast reply follows the routing table, not the
// request (ENETUNREACH without a default route); one bound to the interface's address receives
// none of them. A socket with SO_BINDTODEVICE receives only what arrived on that device and sends
// its broadcasts out of it, so the fix is one setsockopt. This addon creates that socket and hands
// its descriptor to dgram (`bind({ fd })`), which does everything else. It is compiled on first
// use with the system C compiler against the running Node's headers (N-API: no node-gyp, no
// rebuild across Node versions) and cached by the hash of its source. Port 67 needs root or
// CAP_NET_BIND_SERVICE; SO_BINDTODEVICE needs CAP_NET_RAW before Linux 5.7.
// The addon also reads an interface's IPv4 address from the kernel (SIOCGIFADDR): Node's
// os.networkInterfaces() hides an interface while it has no carrier, and the server must start on
// its provisioning interface before the first node is plugged in or powered on.
import { createHash } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

const SOURCE = `#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, int e, const char *step, const char *ifname, uint32_t port) {
  char msg[200];
  if (port) snprintf(msg, sizeof msg, "%s on %s port %u: %s", step, ifname, port, strerror(e));
  else snprintf(msg, sizeof msg, "%s on %s: %s", step, ifname, strerror(e));
  const char *code = e == EPERM || e == EACCES ? "EPERM" : e == EADDRINUSE ? "EADDRINUSE"
                   : e == ENODEV ? "ENODEV" : e == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : "ESOCKET";
  napi_value c, m, err;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, c, m, &err);
  napi_throw(env, err);
  return NULL;
}

/* openDeviceUdp(ifname, port): an IPv4 UDP socket bound to 0.0.0.0:port that only sees traffic of
   ifname (SO_BINDTODEVICE), may broadcast, and shares the port (SO_REUSEADDR). Returns the fd. */
static napi_value open_device_udp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char ifname[IFNAMSIZ + 1] = {0};
  size_t len = 0;
  uint32_t port = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &len) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &port) != napi_ok || len == 0 || len >= IFNAMSIZ || port > 65535) {
    napi_throw_type_error(env, "EINVAL", "openDeviceUdp(ifname, port): bad arguments");
    return NULL;
  }
  const char *step = "socket";
  int one = 1;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) goto fail;
  step = "SO_REUSEADDR";
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) goto fail;
  step = "SO_BROADCAST";
  if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) goto fail;
  step = "SO_BINDTODEVICE";
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)(len + 1)) < 0) goto fail;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  step = "bind";
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail;
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
fail: {
    int e = errno;
    if (fd >= 0) close(fd);
    return throw_errno(env, e, step, ifname, port);
  }
}

/* interfaceIPv4(ifname): { address, netmask } of ifname's primary IPv4 address, asked of the kernel
   (SIOCGIFADDR, SIOCGIFNETMASK) whether or not the link has carrier. Throws ENODEV (no such
   interface) or EADDRNOTAVAIL (no IPv4 address). */
static napi_value interface_ipv4(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char ifname[IFNAMSIZ + 1] = {0};
  size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &len) != napi_ok ||
      len == 0 || len >= IFNAMSIZ) {
    napi_throw_type_error(env, "EINVAL", "interfaceIPv4(ifname): bad argument");
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", ifname, 0);
  struct ifreq ifr;
  char text[2][INET_ADDRSTRLEN];
  const unsigned long req[2] = {SIOCGIFADDR, SIOCGIFNETMASK};
  for (int i = 0; i < 2; i++) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, len);
    ifr.ifr_addr.sa_family = AF_INET;
    if (ioctl(fd, req[i], &ifr) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, i ? "SIOCGIFNETMASK" : "SIOCGIFADDR", ifname, 0);
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, text[i], sizeof text[i]);
  }
  close(fd);
  napi_value out, a, m;
  napi_create_object(env, &out);
  napi_create_string_utf8(env, text[0], NAPI_AUTO_LENGTH, &a);
  napi_create_string_utf8(env, text[1], NAPI_AUTO_LENGTH, &m);
  napi_set_named_property(env, out, "address", a);
  napi_set_named_property(env, out, "netmask", m);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "openDeviceUdp", NAPI_AUTO_LENGTH, open_device_udp, NULL, &fn);
  napi_set_named_property(env, exports, "openDeviceUdp", fn);
  napi_create_function(env, "interfaceIPv4", NAPI_AUTO_LENGTH, interface_ipv4, NULL, &fn);
  napi_set_named_property(env, exports, "interfaceIPv4", fn);
  return exports;
}
`;

export interface DeviceSocketAddon {
  openDeviceUdp(ifname: string, port: number): number;
  /**
   * The interface's primary IPv4 address, with or without carrier. os.networkInterfaces() leaves
   * out every interface that is not running (libuv skips those without IFF_RUNNING): a bridge whose
   * only ports are stopped VMs' taps, or a NIC with its cable out, would look absent.
   */
  interfaceIPv4(ifname: string): { address: string; netmask: string };
}

export class NativeBuildError extends Error {
  override name = "NativeBuildError";
}

/** Where Node's headers are: beside the running binary (/usr/bin/node -> /usr/include/node). */
export function nodeIncludeDir(): string {
  return path.resolve(path.dirname(process.execPath), "..", "include", "node");
}

export function defaultAddonCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "kvmstrap", "native");
}

let loaded: DeviceSocketAddon | undefined;

/** Builds (once per source hash) and loads the addon. */
export async function loadDeviceSocketAddon(cacheDir = defaultAddonCacheDir()): Promise<DeviceSocketAddon> {
  if (loaded) return loaded;
  const hash = createHash("sha256").update(SOURCE).update(process.arch).digest("hex").slice(0, 16);
  const target = path.join(cacheDir, `bind-device-${hash}.node`);
  if (!existsSync(target)) {
    const include = nodeIncludeDir();
    if (!existsSync(path.join(include, "node_api.h")))
      throw new NativeBuildError(
        `Node headers not found at ${include} (needed to build the interface-bound DHCP socket)`,
      );
    await fs.mkdir(cacheDir, { recursive: true });
    const src = path.join(cacheDir, `bind-device-${hash}.c`);
    const tmp = `${target}.tmp-${process.pid}`;
    await fs.writeFile(src, SOURCE);
    const cc = process.env.CC || "cc";
    const r = await execa(cc, ["-shared", "-fPIC", "-O2", "-Wall", "-I", include, src, "-o", tmp], {
      reject: false,
      timeout: 60_000,
    });
    if (r.exitCode !== 0)
      throw new NativeBuildError(
        `${cc} could not build the interface-bound DHCP socket: ${r.stderr || r.message}`,
      );
    await fs.rename(tmp, target);
  }
  loaded = createRequire(import.meta.url)(target) as DeviceSocketAddon;
  return loaded;
}
