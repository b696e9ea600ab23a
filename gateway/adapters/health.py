"""The gateway's health: what it can reach now, logged on every change and served as JSON on a local port."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("tracegate.health")


@dataclass
class Health:
    """Broker and database reachability, whether messages are being taken, and what the trust material needs;
    changes are logged."""

    broker: str = "starting"
    database: str = "starting"
    consuming: bool = False
    detail: dict[str, str] = field(default_factory=dict)
    # What the trust material needs from an operator: problems now and warnings ahead (`tracegate trust check`),
    # and the last reload's failure. Shown, not judged: a state whose certificate expired does not stop the switch.
    trust: tuple[str, ...] = ()
    # The gateway's own signing certificate: `valid`, `expired` or `not yet valid`. Outside its validity every
    # national system refuses what the gateway signs, so that alone of the trust findings makes it unhealthy.
    signing_certificate: str = "valid"

    def set(self, **changes: Any) -> None:
        """Record a change of state, logging it once."""
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        for key, value in changed.items():
            setattr(self, key, value)
        if changed:
            log.warning("health", **self.snapshot()) if not self.ok else log.info("health", **self.snapshot())

    @property
    def ok(self) -> bool:
        """Serving: broker and database up, consuming, and the gateway's signing certificate valid."""
        return self.broker == "up" and self.database == "up" and self.consuming and self.signing_certificate == "valid"

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready fields."""
        return {
            "status": "ok" if self.ok else "degraded",
            "broker": self.broker,
            "database": self.database,
            "consuming": self.consuming,
            **({"trust": list(self.trust)} if self.trust else {}),
            **({"signing_certificate": self.signing_certificate} if self.signing_certificate != "valid" else {}),
        }


async def serve_health(health: Health, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP endpoint: any GET answers 200 with the health JSON when ok, else 503."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        body = json.dumps(health.snapshot()).encode()
        status = b"200 OK" if health.ok else b"503 Service Unavailable"
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host, port)
