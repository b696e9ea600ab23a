"""Every setting, from `config/tracegate.toml` (or the file `TRACEGATE_CONFIG` names) and `TRACEGATE_*` variables.

This is the only module that reads the environment. Environment variables win over the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.core.deadlines import DeadlinePolicy
from gateway.core.errors import ConfigurationError

DEFAULT_CONFIG = Path("config/tracegate.toml")


@dataclass(frozen=True)
class Settings:
    """What an operator can set; each field is `TRACEGATE_<FIELD>` in the environment."""

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "sqlite+aiosqlite:///var/tracegate.db"
    database_schema: str = ""  # PostgreSQL only: the schema to keep tables in
    routing_table: Path = Path("config/routing.toml")
    trust_dir: Path = Path("certs")
    makes_file: Path = Path("config/makes.toml")  # the register's alias list of firearm makes (absent: none)
    trust_reload_seconds: float = 60.0  # reread the trust directory this often when a file in it changed (0: never)
    trust_warn_days: float = 60.0  # warn this long before a certificate expires or a CRL falls due
    gateway_key: Path = Path("var/pki/gateway.key")
    gateway_cert: Path = Path("var/pki/gateway.pem")
    max_message_bytes: int = 1_048_576
    max_message_age_hours: float = 72.0
    max_clock_skew_seconds: float = 300.0
    acknowledge_days: float = 7.0
    respond_days: float = 56.0
    acknowledge_reminder_days: float = 2.0
    respond_reminder_days: float = 7.0
    delay_silences_overdue: bool = False
    scheduler_interval_seconds: float = 30.0
    checkpoint_interval_seconds: float = 300.0
    prefetch: int = 32
    broker_user_prefix: str = "npc-"  # a state's broker user is <prefix><CC> (`tracegate topology`)
    require_user_id: bool = True  # each state has its own broker user (`tracegate topology`): no user_id, refused
    health_port: int = 0  # serve /health on 127.0.0.1:PORT (0: off)
    broker_connect_seconds: float = 60.0  # how long `serve` keeps trying to reach the broker at start
    queue_type: str = "classic"  # or "quorum"
    delivery_limit: int = 5
    state_queue_limit: int = 10000  # requests waiting in one state's inbound queue; more are refused (basic.nack)
    relay_batch: int = 200
    inline_check_bytes: int = 65536  # larger messages are checked on a thread of their own, never on the event loop
    crypto_threads: int = 0  # threads for parsing and XML-DSig; 0: all on the event loop (docs/performance.md)
    log_level: str = "info"
    log_format: str = "console"  # or "json"

    def deadline_policy(self) -> DeadlinePolicy:
        """The deadline rules these settings describe."""
        return DeadlinePolicy(
            acknowledge_within=timedelta(days=self.acknowledge_days),
            respond_within=timedelta(days=self.respond_days),
            acknowledge_reminder=timedelta(days=self.acknowledge_reminder_days),
            respond_reminder=timedelta(days=self.respond_reminder_days),
            delay_silences_overdue=self.delay_silences_overdue,
        )

    @property
    def max_message_age(self) -> timedelta:
        """How old a message's `CreatedAt` may be before it is `STALE_MESSAGE`."""
        return timedelta(hours=self.max_message_age_hours)

    @property
    def max_clock_skew(self) -> timedelta:
        """How far in the future a `CreatedAt` may be."""
        return timedelta(seconds=self.max_clock_skew_seconds)


def _convert(name: str, kind: Any, raw: Any) -> Any:
    """Turn a file or environment value into the field's type, or say which setting is wrong."""
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(text)
            return text in {"1", "true", "yes", "on"}
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(str(raw))
        return str(raw)
    except ValueError as err:
        raise ConfigurationError(f"setting {name}: {raw!r} is not a valid {getattr(kind, '__name__', kind)}") from err


def load_settings(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Settings from the config file (if any) overlaid with `TRACEGATE_*` variables."""
    env = os.environ if environ is None else environ
    path = config_file or Path(env.get("TRACEGATE_CONFIG", str(DEFAULT_CONFIG)))
    values: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigurationError(f"{path}: not valid TOML: {err}") from err
        values.update(data.get("tracegate", data))
    elif config_file is not None or "TRACEGATE_CONFIG" in env:
        raise ConfigurationError(f"{path}: configuration file not found")
    known = {f.name: f for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigurationError(f"{path}: unknown settings: {', '.join(sorted(unknown))}")
    for name in known:
        key = f"TRACEGATE_{name.upper()}"
        if key in env:
            values[name] = env[key]
    converted = {name: _convert(name, known[name].type, raw) for name, raw in values.items()}
    return dataclasses.replace(Settings(), **converted)


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, type) for every setting: the README's table comes from this."""
    return [
        (f"TRACEGATE_{f.name.upper()}", str(f.default), str(getattr(f.type, "__name__", f.type)))
        for f in fields(Settings)
    ]
