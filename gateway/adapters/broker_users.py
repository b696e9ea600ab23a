"""One RabbitMQ user per state: plan the broker's users and permissions, and apply the plan with rabbitmqctl.

`plan` is pure: from the routing table it derives the `rabbitmqctl` argument lists that give every state
that runs a national system (every state without a delegate) a user `<prefix><CC>` which may

* configure nothing (`^$`): the gateway declares the topology itself (contract section 2);
* write only to the exchange `itrace.inbound`;
* read only its own outbound queue (the table's `queue`, by default `itrace.outbound.<CC>`);

and give the gateway's user what it needs to declare the topology, consume its queue and publish to the
outbound queues through the default exchange (`amq.default`).

No command holds a password: `add_user` reads it from standard input, so a printed plan never shows one.
`apply` runs the plan. It is idempotent: a user that exists keeps its password, permissions are set again.
A new state user's password comes from `<secrets_dir>/<CC>.password` when that file exists; otherwise a
random one is generated and written there with mode 0600.

What the broker cannot do: RabbitMQ checks topic permissions (`set_topic_permissions`) only on *topic*
exchanges. `itrace.inbound` is a *direct* exchange, so nothing in the broker stops a state's user from
publishing under another state's routing key. The plan therefore sets no topic permissions (they would be
inert). A state's identity is its AMQP `user_id`, which the broker validates against the connection's user;
the gateway takes the transport identity from it and refuses `SENDER_MISMATCH` when `Header/Sender` differs.
See docs/broker-setup.md.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gateway.adapters.amqp import INBOUND_EXCHANGE
from gateway.adapters.amqp import user_of as user_of  # re-exported: `tracegate topology` names the gateway user by it
from gateway.core.errors import ConfigurationError
from gateway.core.wire_names import OUTBOUND_PREFIX
from gateway.routing.table import RoutingTable

DEFAULT_PREFIX = "npc-"
GATEWAY_CONFIGURE = r"^itrace\."
GATEWAY_WRITE = r"^(itrace\..*|amq\.default)$"
GATEWAY_READ = r"^itrace\."
NOTHING = "^$"
_PREFIX = re.compile(r"[A-Za-z0-9._-]*")
_ALREADY_EXISTS = ("already exists", "user_already_exists")


@dataclass(frozen=True)
class Command:
    """One `rabbitmqctl` invocation; `secret` names the password file `add_user` reads (never the password)."""

    args: tuple[str, ...]
    secret: str | None = None

    def render(self, secrets_dir: Path) -> str:
        """The command line as an operator would type it; a password is shown only as where it comes from."""
        line = shlex.join(("rabbitmqctl", *self.args))
        if self.secret is None:
            return line
        return f"{line}  # password on standard input, from {password_file(secrets_dir, self.secret)}"


def user_for(state: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The broker user of a state's national system."""
    return f"{prefix}{state}"


def state_for(user: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """The state a broker user speaks for, or None if `user` is not a state user of this prefix."""
    if not user.startswith(prefix):
        return None
    code = user[len(prefix) :]
    return code if len(code) == 2 and code.isalpha() and code.isupper() else None


def exact(name: str) -> str:
    """A permission pattern matching exactly one resource name (RabbitMQ patterns are unanchored regexes)."""
    return f"^{re.escape(name)}$"


def password_file(secrets_dir: Path, state: str) -> Path:
    """Where a state user's password is kept."""
    return secrets_dir / f"{state}.password"


def vhost_of(url: str) -> str:
    """The virtual host an AMQP URL names (`/` when it names none)."""
    path = urlsplit(url).path
    return "/" if path in ("", "/") else unquote(path[1:])


def senders(table: RoutingTable) -> list[str]:
    """States that run a national system: every state of the table that does not delegate (sorted)."""
    return sorted(code for code, entry in table.states.items() if entry.delegate is None)


def _gateway_patterns(table: RoutingTable) -> tuple[str, str, str]:
    """(configure, write, read) of the gateway's user; outbound queues outside `itrace.` are added by name."""
    extra = sorted({e.queue for e in table.states.values() if not e.queue.startswith(OUTBOUND_PREFIX)})
    if not extra:
        return GATEWAY_CONFIGURE, GATEWAY_WRITE, GATEWAY_READ
    names = "|".join(re.escape(q) for q in extra)
    return (
        rf"^(itrace\..*|{names})$",
        rf"^(itrace\..*|amq\.default|{names})$",
        rf"^(itrace\..*|{names})$",
    )


def plan(table: RoutingTable, vhost: str, gateway_user: str, *, prefix: str = DEFAULT_PREFIX) -> list[Command]:
    """The rabbitmqctl commands that set up one user per state and the gateway's permissions on `vhost`."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(f"user prefix {prefix!r}: use letters, digits, '.', '_' and '-' only")
    commands = [Command(("add_vhost", vhost))]
    commands.append(Command(("set_permissions", "-p", vhost, gateway_user, *_gateway_patterns(table))))
    for code in senders(table):
        user = user_for(code, prefix)
        if user == gateway_user:
            raise ConfigurationError(f"the gateway's user {gateway_user!r} cannot also be {code}'s user")
        queue = table.states[code].queue
        commands.append(Command(("add_user", user), secret=code))
        commands.append(Command(("set_permissions", "-p", vhost, user, NOTHING, exact(INBOUND_EXCHANGE), exact(queue))))
    return commands


def _ctl() -> str:
    """The path of rabbitmqctl, or a clear error."""
    found = shutil.which("rabbitmqctl")
    if found is None:
        raise ConfigurationError("rabbitmqctl is not on PATH (run on the broker's host, as a user that may use it)")
    return found


def _run(ctl: str, args: tuple[str, ...], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run rabbitmqctl without a shell; output is captured, never echoed."""
    try:
        return subprocess.run([ctl, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120)
    except subprocess.TimeoutExpired as err:
        raise ConfigurationError(f"rabbitmqctl {args[0]} did not finish within 120 s; is the broker up?") from err


def _failure(args: tuple[str, ...], done: subprocess.CompletedProcess[str]) -> ConfigurationError:
    """The error for a failed command: the command (no secret is ever in it) and what rabbitmqctl said."""
    said = " ".join((done.stderr or done.stdout).split())
    return ConfigurationError(f"rabbitmqctl {shlex.join(args)} failed ({done.returncode}): {said}")


def list_users(ctl: str | None = None) -> set[str]:
    """Names of the users the broker has."""
    args = ("-q", "list_users", "--formatter", "json")
    done = _run(ctl or _ctl(), args)
    if done.returncode != 0:
        raise _failure(args, done)
    return {str(row["user"]) for row in json.loads(done.stdout or "[]")}


def read_or_make_password(secrets_dir: Path, state: str) -> str:
    """The password in the state's file; if there is none, a new random one written there with mode 0600."""
    path = password_file(secrets_dir, state)
    if path.exists():
        password = path.read_text(encoding="utf-8").strip()
        if not password:
            raise ConfigurationError(f"{path} is empty")
        return password
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password


def _existing_user(ctl: str, user: str, secrets_dir: Path, state: str) -> str:
    """Leave an existing user's password alone; say whether the password file still opens it."""
    path = password_file(secrets_dir, state)
    if not path.exists():
        return f"user {user} exists; password unchanged (no file {path})"
    password = read_or_make_password(secrets_dir, state)
    if _run(ctl, ("authenticate_user", user), stdin=password + "\n").returncode == 0:
        return f"user {user} exists; password unchanged, matches {path}"
    return f"WARNING: user {user} exists but {path} does not open it; set it with `rabbitmqctl change_password {user}`"


def _add_user(ctl: str, command: Command, existing: set[str], secrets_dir: Path) -> str:
    """Create a state user unless it exists; returns what happened (never the password)."""
    user, state = command.args[1], command.secret
    assert state is not None, "add_user carries the name of its password file"
    if user in existing:
        return _existing_user(ctl, user, secrets_dir, state)
    password = read_or_make_password(secrets_dir, state)
    done = _run(ctl, command.args, stdin=password + "\n")
    if done.returncode != 0:
        if any(mark in (done.stderr + done.stdout) for mark in _ALREADY_EXISTS):
            return _existing_user(ctl, user, secrets_dir, state)
        raise _failure(command.args, done)
    return f"user {user} created; password in {password_file(secrets_dir, state)}"


def apply(commands: list[Command], secrets_dir: Path, *, ctl: str | None = None) -> list[str]:
    """Run the plan with rabbitmqctl, idempotently; returns one line per command (never a password)."""
    path = ctl or _ctl()
    existing = list_users(path)
    report = []
    for command in commands:
        if command.args[0] == "add_user":
            report.append(_add_user(path, command, existing, secrets_dir))
            continue
        done = _run(path, command.args)
        if done.returncode != 0:
            raise _failure(command.args, done)
        report.append(shlex.join(command.args))
    return report
