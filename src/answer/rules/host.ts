// The host's and the guests' identities: host names (RFC 1123), user names, SSH public keys (one
// authorized_keys line each) and password hashes, held to the same grammars on both paths.
import { type Grammar, HOSTNAME, PASSWORD_HASH, SSH_PUBLIC_KEY, USER_NAME } from "../../core/grammar.js";
import { type Rule, rule } from "./types.js";

type User = { name: string; sshKeys: string[]; passwordHash?: string | undefined };

const users = (answer: Parameters<Rule["check"]>[0]["answer"]): { path: string; user: User }[] => [
  ...(answer.host?.users ?? []).map((user, i) => ({ path: `host.users[${i}]`, user })),
  ...answer.vms.map((vm, i) => ({ path: `vms[${i}].user`, user: vm.user })),
];

const shown = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);

export const hostRules: Rule[] = [
  rule("host.hostname", "host names follow RFC 1123 (labels of 63, 253 in all)", ({ answer }, emit) => {
    const check = (value: string | undefined, path: string) => {
      if (value !== undefined && !HOSTNAME.test(value))
        emit.error(path, `${shown(value)} (${value.length} characters) is not ${HOSTNAME.describe}`);
    };
    check(answer.host?.hostname, "host.hostname");
    for (const [i, vm] of answer.vms.entries()) check(vm.hostname, `vms[${i}].hostname`);
  }),
  rule("host.user-name", "user names are POSIX names", ({ answer }, emit) => {
    for (const { path, user } of users(answer))
      if (!USER_NAME.test(user.name))
        emit.error(`${path}.name`, `${shown(user.name)} is not ${USER_NAME.describe}`);
  }),
  rule("host.ssh-key", "each SSH key is one authorized_keys line of a known type", ({ answer }, emit) => {
    for (const { path, user } of users(answer))
      user.sshKeys.forEach((k, j) => {
        if (!SSH_PUBLIC_KEY.test(k))
          emit.error(
            `${path}.sshKeys[${j}]`,
            `${shown(k)} is not ${SSH_PUBLIC_KEY.describe}${/[\r\n]/.test(k) ? " (it holds a line break, which would add a second authorized_keys line)" : ""}`,
          );
      });
  }),
  rule(
    "host.password-hash",
    "password hashes are crypt(3) hashes, the same on the host and VM paths",
    ({ answer }, emit) => {
      const grammar: Grammar = PASSWORD_HASH;
      for (const { path, user } of users(answer))
        if (user.passwordHash !== undefined && !grammar.test(user.passwordHash))
          emit.error(`${path}.passwordHash`, `the password hash is not ${grammar.describe}`);
    },
  ),
];
