"""The demo: the whole switch on the local RabbitMQ, national systems as separate AMQP clients, a readable table."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from lxml import etree
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.adapters.amqp import AmqpBroker, user_of
from gateway.adapters.broker_users import apply, password_file, plan, user_for
from gateway.app import Gateway
from gateway.cli.views import render_conversation, trace_record
from gateway.core.errors import ConfigurationError
from gateway.dev import samples
from gateway.dev.demo_records import register_scenarios
from gateway.dev.npc import NationalSystem, Received
from gateway.dev.pki import DevPki, create_dev_pki, issue_certificate
from gateway.logs import configure_logging
from gateway.routing.table import RoutingTable, load_table
from gateway.settings import Settings
from gateway.store.reads import conversation, find_trace
from gateway.xml.signatures import Signer

DEMO_DIR = Path("var/demo")
DEMO_VHOST = "tracegate-demo"


@dataclass
class Row:
    """One line of the demo's table."""

    scenario: str
    sender: str
    sent: str
    answer: str = "(nothing)"
    delivered: str = ""
    detail: str = ""


class Demo:
    """National systems, their keys, and the rows of what happened."""

    def __init__(self, settings: Settings, pki: DevPki, states: list[str], users: dict[str, tuple[str, str]]) -> None:
        """`users`: each state's broker user and the URL it connects with (none: all share the gateway's URL)."""
        self.settings = settings
        self.pki = pki
        self.signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in states}
        self.npcs = {
            s: NationalSystem(s, users[s][1], user_id=users[s][0])
            if s in users
            else NationalSystem(s, settings.broker_url)
            for s in states
        }
        self.rows: list[Row] = []

    async def connect(self) -> None:
        """Connect every national system and empty its queue of earlier runs' messages."""
        for npc in self.npcs.values():
            await npc.connect(purge=True)

    def sign(self, state: str, root: etree._Element) -> bytes:
        """Sign as `state`'s national system."""
        return self.signers[state].sign(root)

    async def exchange(
        self,
        scenario: str,
        sender: str,
        body: bytes,
        *,
        routing_key: str | None = None,
        watch: str | None = None,
    ) -> tuple[Received | None, Received | None]:
        """Send `body` as `sender`, wait for its answer and for a `Delivery` to `watch`; add a table row."""
        root = etree.fromstring(body)
        kind = etree.QName(root).localname
        await self.npcs[routing_key or sender].send(body)
        answers = await self.npcs[routing_key or sender].receive(1, timeout=10)
        answer = answers[0] if answers else None
        delivery = None
        if watch:
            got = await self.npcs[watch].receive(1, timeout=2 if answer and answer.kind == "Rejection" else 10)
            delivery = got[0] if got else None
        row = Row(scenario, sender, kind)
        if answer is not None:
            row.answer = _describe(answer)
            row.detail = answer.find("Detail") or _deadline_text(answer)
        row.delivered = (
            f"{watch}: Delivery ({delivery.find('Route/Rule')})" if delivery else (f"{watch}: nothing" if watch else "")
        )
        self.rows.append(row)
        return answer, delivery

    async def close(self) -> None:
        """Close every national system's connection."""
        for npc in self.npcs.values():
            await npc.close()


def _describe(answer: Received) -> str:
    """A short account of the gateway's answer."""
    if answer.kind == "Rejection":
        return f"Rejection {answer.find('Code')}"
    if answer.kind == "Receipt":
        routed = answer.find("RoutedTo")
        return f"Receipt {answer.find('Status')}" + (f" → {routed} by {answer.find('Rule')}" if routed else "")
    return answer.kind


def _deadline_text(answer: Received) -> str:
    """The deadlines a receipt announces."""
    ack, respond = answer.find("Deadlines/AcknowledgeBy"), answer.find("Deadlines/RespondBy")
    return f"acknowledge by {ack[:10]}, respond by {respond[:10]}" if ack and respond else ""


async def _switch_scenarios(demo: Demo) -> None:
    """Routing by each rule, a forgery, a tampered message, an incomplete request and a duplicate."""
    export = samples.trace_request(
        "ZA", made_in="AT", import_marks=[("BR", 2014)], exports=[("ZA", "MZ", "2019-06-14")]
    )
    first = demo.sign("ZA", export)
    receipt, _ = await demo.exchange("export record names MZ", "ZA", first, watch="MZ")
    await demo.exchange(
        "import mark names BR",
        "KE",
        demo.sign("KE", samples.trace_request("KE", made_in="AT", import_marks=[("BR", 2014)])),
        watch="BR",
    )
    await demo.exchange(
        "only the country of manufacture",
        "MZ",
        demo.sign("MZ", samples.trace_request("MZ", made_in="AT")),
        watch="AT",
    )
    rogue_key, rogue_ca = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country="ZA",
        common_name="rogue CA",
        key_kind="ec",
        is_ca=True,
        not_before=datetime.now(UTC) - timedelta(days=1),
        not_after=datetime.now(UTC) + timedelta(days=30),
    )
    forged_key, forged_cert = issue_certificate(
        issuer_key=rogue_key,
        issuer_cert=rogue_ca,
        subject_country="ZA",
        common_name="ZA national point of contact",
        key_kind="ec",
        not_before=datetime.now(UTC) - timedelta(days=1),
        not_after=datetime.now(UTC) + timedelta(days=30),
    )
    forger = Signer.from_objects(forged_key, forged_cert)
    await demo.exchange(
        "forgery: ZA's name, a stranger's key",
        "ZA",
        forger.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2020-01-01")])),
        watch="MZ",
    )
    tampered = demo.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2020-01-01")]))
    await demo.exchange("signed, then a value altered", "ZA", tampered.replace(b"BXK291", b"BXK297"), watch="MZ")
    await demo.exchange(
        "incomplete: no caliber, no serial",
        "KE",
        demo.sign("KE", samples.trace_request("KE", omit=("Caliber", "SerialNumber"))),
        watch="AT",
    )
    await demo.exchange(
        "suspended destination",
        "ZA",
        demo.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MW", "2022-05-01")])),
    )
    again, _ = await demo.exchange("duplicate of the first request", "ZA", first, watch="MZ")
    if receipt and again and again.message_id == receipt.message_id:
        demo.rows[-1].answer = "the first Receipt again (same MessageId); no second effect"


def _with_user(url: str, user: str, password: str, vhost: str) -> str:
    """`url` with another user, password and vhost."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), parts.query, ""))


def _broker_users(settings: Settings, table: RoutingTable) -> tuple[Settings, dict[str, tuple[str, str]], str]:
    """One broker user per state on a vhost of the demo's own, as `tracegate topology --apply` sets them up; the
    gateway then requires user_id, as it does by default. Where rabbitmqctl cannot be run (a remote broker), the
    states share the gateway's user and the demo says so: settings, each state's (user, URL), a note."""
    secrets_dir = DEMO_DIR / "broker-secrets"
    gateway_user = user_of(settings.broker_url)
    prefix = settings.broker_user_prefix
    try:
        apply(plan(table, DEMO_VHOST, gateway_user, prefix=prefix), secrets_dir)
        for state, entry in table.states.items():
            if entry.delegate is None and not password_file(secrets_dir, state).exists():
                raise ConfigurationError(
                    f"broker user {user_for(state, prefix)} exists but {password_file(secrets_dir, state)} does not: "
                    f"delete the user (`rabbitmqctl delete_user {user_for(state, prefix)}`) or put its password there"
                )
    except ConfigurationError as err:
        note = (
            f"[yellow]Could not set up a broker user per state ({escape(str(err))}); the national systems share "
            f"{gateway_user!r} and user_id is not required in this run. `tracegate topology --apply` on the "
            "broker's host sets them up; without them any broker user can publish under another state's name[/]"
        )
        return dataclasses.replace(settings, require_user_id=False), {}, note
    gateway_password = urlsplit(settings.broker_url).password or "guest"
    users = {}
    for state in table.states:
        if table.states[state].delegate is None:
            user = user_for(state, prefix)
            password = password_file(secrets_dir, state).read_text(encoding="utf-8").strip()
            users[state] = (user, _with_user(settings.broker_url, user, password, DEMO_VHOST))
    url = _with_user(settings.broker_url, gateway_user, gateway_password, DEMO_VHOST)
    note = f"each national system on its own broker user ({prefix}ZA, ...) on vhost {DEMO_VHOST}, user_id required"
    return dataclasses.replace(settings, broker_url=url, require_user_id=True), users, note


def _prepare(settings: Settings) -> tuple[Settings, DevPki, list[str], str, dict[str, tuple[str, str]], str]:
    """A fresh demo database, the demo's PKI and broker users (kept between runs); settings pointing at them."""
    table = load_table(settings.routing_table)
    states = sorted(c for c, e in table.states.items() if e.delegate is None and e.active)
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR / "db", ignore_errors=True)
    (DEMO_DIR / "db").mkdir(parents=True, exist_ok=True)
    pki = create_dev_pki(DEMO_DIR / "pki", DEMO_DIR / "certs", states, now=datetime.now(UTC))
    demo_settings = dataclasses.replace(
        settings,
        database_url=f"sqlite+aiosqlite:///{DEMO_DIR / 'db' / 'tracegate.db'}",
        trust_dir=DEMO_DIR / "certs",
        gateway_key=pki.gateway_key_path,
        gateway_cert=pki.gateway_cert_path,
    )
    demo_settings, users, note = _broker_users(demo_settings, table)
    return demo_settings, pki, states, table.version, users, note


async def _trace_conversation(demo: Demo) -> str:
    """A whole trace, ZA asking MZ: acknowledgement, return, resubmission, delay, a restricted partial answer."""
    receipt, _ = await demo.exchange(
        "a trace opens: ZA asks MZ",
        "ZA",
        demo.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], serial="GLK4471")),
        watch="MZ",
    )
    trace = receipt.find("Header/TraceId") if receipt else None
    assert trace, "the demo's trace request was not accepted"
    steps = [
        ("MZ acknowledges (8.3.1)", "MZ", samples.reply("Acknowledgement", "MZ", trace)),
        (
            "MZ returns it for completion (8.3.2)",
            "MZ",
            samples.reply("ReturnForCompletion", "MZ", trace, MissingItem=["import-mark"], Note="Import mark, please."),
        ),
        (
            "ZA resubmits, same trace, clocks restart",
            "ZA",
            samples.trace_request(
                "ZA",
                trace_id=trace,
                resubmits=trace,
                serial="GLK4471",
                import_marks=[("MZ", 2016)],
                exports=[("ZA", "MZ", "2019-06-14")],
            ),
        ),
        ("MZ acknowledges the resubmission", "MZ", samples.reply("Acknowledgement", "MZ", trace)),
        (
            "MZ announces a delay, with its reason",
            "MZ",
            samples.reply(
                "DelayNotice",
                "MZ",
                trace,
                Reason="ongoing-investigation",
                Text="Records are sealed.",
                ExpectedBy="2027-02-15",
            ),
        ),
        (
            "MZ answers, partly and with restrictions",
            "MZ",
            samples.trace_response(
                "MZ",
                trace,
                partial=True,
                partial_reason="ongoing-investigation",
                restrictions=["competent-authorities-only", "no-onward-release-without-consent"],
                restriction_text="Release to the prosecuting authority only.",
            ),
        ),
        ("ZA asks for clarification (8.3.4.2)", "ZA", samples.reply("Comment", "ZA", trace, Text="Which unit?")),
    ]
    for scenario, sender, root in steps:
        _, delivery = await demo.exchange(
            scenario, sender, demo.sign(sender, root), watch="ZA" if sender == "MZ" else "MZ"
        )
        if delivery is not None and delivery.root.find("{urn:itrace:1}Restrictions") is not None:
            codes = [r.get("code") for r in delivery.root.iter("{urn:itrace:1}Restriction")]
            demo.rows[-1].detail = "Delivery/Restrictions: " + ", ".join(c or "" for c in codes)
    report, _ = await demo.exchange(
        "ZA asks the switch for its traces", "ZA", demo.sign("ZA", samples.message("StatusQuery", "ZA"))
    )
    if report is not None:
        lines = list(report.root.iterfind("{urn:itrace:1}Trace"))
        statuses = sorted({line.findtext("{urn:itrace:1}Status") or "" for line in lines})
        demo.rows[-1].detail = f"{len(lines)} trace(s) of ZA's own: {', '.join(statuses)}"
    return trace


async def run_demo(settings: Settings) -> int:
    """Run the demo; returns the process exit code."""
    configure_logging("warning")
    console = Console(width=None if sys.stdout.isatty() else 150)
    settings, pki, states, version, users, note = await asyncio.to_thread(_prepare, settings)
    probe = AmqpBroker(settings.broker_url)
    try:
        await probe.connect(timeout=5)
    except ConnectionError as err:
        console.print(
            f"[bold red]No RabbitMQ broker at {settings.broker_url}[/]: {err}\n"
            "Start one with `rabbitmq-server -detached` (or point TRACEGATE_BROKER_URL at yours), "
            "then run the demo again."
        )
        return 2
    await probe.close()
    gateway = Gateway(settings)
    await gateway.start()
    demo = Demo(settings, pki, states, users)
    try:
        await demo.connect()
        console.print(
            f"tracegate demo: switch up, routing table {version[:19]}…, "
            f"national systems {', '.join(states)} connected, each signing with its own key;\n{note}.\n"
        )
        await _switch_scenarios(demo)
        switch_rows = len(demo.rows)
        trace = await _trace_conversation(demo)
        trace_rows = len(demo.rows)
        await register_scenarios(demo)
        await gateway.relay.write_marks()  # what the broker confirmed shows as sent, not waiting for the next tick
        found = await find_trace(gateway.store, trace)
        story = await conversation(gateway.store, trace)
    finally:
        await demo.close()
        await gateway.stop()
    _print(console, demo.rows[:switch_rows], "Routing and refusals")
    _print(console, demo.rows[switch_rows:trace_rows], "A whole trace, ZA asking MZ (ISACS 05.31, 8.3)")
    _print(console, demo.rows[trace_rows:], "The register of lost and stolen firearms (contract 4.3)")
    if found is not None:
        console.print("\nThe same trace as an administrator sees it (`tracegate traces show`):")
        console.print(render_conversation(trace_record(found, datetime.now(UTC)), story, "text"), markup=False)
    return 0


def _print(console: Console, rows: list[Row], title: str) -> None:
    """The table a person reads."""
    out = Table(title=title, show_lines=True)
    for column in ("#", "scenario", "from", "sent", "gateway answered", "delivered to", "detail"):
        out.add_column(column, overflow="fold")
    for i, row in enumerate(rows, 1):
        out.add_row(str(i), row.scenario, row.sender, row.sent, row.answer, row.delivered, row.detail)
    console.print(out)
