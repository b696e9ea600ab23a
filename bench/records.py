"""`python -m bench records`: the records register (contract 4.3) at iARMS's size, 1.5 million records, on SQLite
and on PostgreSQL.

load        N records in ten states' CSV files of different sizes (serials written as registers write them, makes
            as the alias list spells them), each imported by `tracegate records import FILE --state CC` in a process
            of its own, as an administrator would: the whole load's rows per second, and each import's peak
            resident memory (VmHWM; the import streams in chunks, so only what it keeps per row may grow)
plan        the query plan of the lookup every firearm trace request makes in its batch's transaction (the
            store's own candidates statement): a probe of `ix_records_shape`, never a scan
query       RecordQuery round trips over the broker against `tracegate serve` on the loaded register, one in
            flight: half for serials in the register (written differently, or with look-alike characters), half
            absent; p50 / p99 from the publish to the RecordQueryResult on `itrace.outbound.<CC>`
trace path  the throughput bench's closed loop (16 in flight, the same ~4 KB signed requests, then a fixed load of
            100 msgs/s) with the register empty and with the N records, alternated in one run; 1 % of the requests
            name a recorded firearm (each a hit: two HitNotices more), the others serials the register does not
            hold (the common case)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from lxml import etree
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.throughput import Env, _ctl, make_env, percentile, run_tracegate, signed_requests
from bench.wire import publish, serve_env, start_serve, until_declared
from gateway.core.model import NS
from gateway.core.wire_names import outbound_queue
from gateway.dev import samples
from gateway.pipeline.committer import GroupCommitter
from gateway.records.matching import LOOK_ALIKES, serial_key, shape_key
from gateway.store import register as rq
from gateway.xml.signatures import Signer

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# The reporting states and their shares of the register: registers differ in size, so the peak memory of the
# largest and the smallest import says whether an import grows with its file. The first five are routed.
REGISTERS = (
    ("ZA", 25), ("BR", 18), ("KE", 13), ("US", 10), ("DE", 9), ("AT", 7), ("MZ", 6), ("FR", 5), ("IT", 4), ("CA", 3)
)  # fmt: skip
COLUMNS = (
    "reference",
    "status",
    "serial_number",
    "make",
    "model",
    "caliber",
    "country_of_manufacture",
    "date",
    "place",
)
# (make, country of manufacture, models, caliber): the fifteen makes the alias list names first.
MAKES = (
    ("Glock", "AT", ("17", "19", "26", "17 Gen 4"), "9x19mm Parabellum"),
    ("Beretta", "IT", ("92FS", "PX4 Storm", "M9"), "9x19mm Parabellum"),
    ("Smith & Wesson", "US", ("M&P9", "Model 686", "SD9VE"), "9x19mm"),
    ("Heckler & Koch", "DE", ("USP", "G3", "MP5"), "7.62x51mm"),
    ("Kalashnikov", "RU", ("AK-47", "AKM", "AK-74"), "7.62x39mm"),
    ("Colt", "US", ("1911", "M4", "Python"), ".45 ACP"),
    ("SIG Sauer", "DE", ("P226", "P320", "P365"), "9x19mm"),
    ("FN Herstal", "BE", ("FAL", "Five-seveN", "Hi-Power"), "5.7x28mm"),
    ("Ruger", "US", ("10/22", "LCP", "GP100"), ".22 LR"),
    ("Česká zbrojovka", "CZ", ("CZ 75", "Scorpion EVO 3", "P-10"), "9x19mm"),
    ("Taurus", "BR", ("G2C", "PT92", "Judge"), "9x19mm"),
    ("Walther", "DE", ("PPK", "P99", "PDP"), ".380 ACP"),
    ("Remington", "US", ("870", "700", "1100"), "12 gauge"),
    ("Norinco", "CN", ("Type 56", "NP-22", "Type 54"), "7.62x39mm"),
    ("Zastava", "RS", ("M70", "M57", "PAP M92"), "7.62x39mm"),
)
STATUSES = ("stolen",) * 11 + ("lost",) * 6 + ("trafficked",) * 2 + ("smuggled",)
PLACES = ("Durban", "Nairobi", "Sao Paulo", "Maputo", "Vienna", "Berlin", "Lyon", "Milan", "Toronto", "Houston", "")
LETTERS, DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
UNFOLD = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z"}  # a look-alike of each folded digit
QUERIES = 400
RATE = 100.0  # the fixed offered load (msgs/s) of each trace-path run's latency: about half what saturation delivers
HIT_EVERY = 100  # one trace request in this many names a recorded firearm
BATCH = GroupCommitter.max_batch  # the most messages one transaction holds, so the most shape keys one lookup probes
_QUERY_ID = re.compile(rb"<(?:[\w.-]+:)?QueryMessageId>([^<]+)</")
_T = f"{{{NS}}}"


def spellings() -> dict[str, tuple[str, ...]]:
    """Each make's spellings in the alias list (config/makes.toml), the make itself first (alone if no list)."""
    path = Path(__file__).resolve().parents[1] / "config" / "makes.toml"
    listed = tomllib.loads(path.read_text(encoding="utf-8")).get("makes", {}) if path.exists() else {}
    return {make: (make, *listed.get(make, ())) for make, *_ in MAKES}


def serial(rng: random.Random) -> str:
    """A serial number as registers write them: "ABC123456", "BER-D12345Z", "GLK 77.001", "2019/004512" ..."""

    def letters(n: int) -> str:
        return "".join(rng.choices(LETTERS, k=n))

    def digits(n: int) -> str:
        return "".join(rng.choices(DIGITS, k=n))

    shape = rng.randrange(8)
    if shape == 0:
        return letters(3) + digits(6)
    if shape == 1:
        return f"{letters(3)}-{letters(1)}{digits(5)}{letters(1)}"
    if shape == 2:
        return f"{letters(3)} {digits(2)}.{digits(3)}"
    if shape == 3:
        return f"{rng.randint(1990, 2025)}/{digits(6)}"
    if shape == 4:
        return f"{letters(2)} {digits(7)}"
    if shape == 5:
        return digits(1) + letters(1) + digits(7)
    if shape == 6:
        return f"{digits(2)}-{digits(5)}/{letters(2)}"
    return letters(1) + digits(6) + letters(2)


def look_alike(written: str) -> str | None:
    """The serial with its first look-alike character read as the other (a clerk's or a worn stamp's misreading:
    O for 0, 8 for B ...), so that it matches only as `probable`; None when it has none."""
    for i, char in enumerate(written):
        other = LOOK_ALIKES.get(char) or UNFOLD.get(char)
        if other:
            return written[:i] + other + written[i + 1 :]
    return None


def written_otherwise(written: str) -> str:
    """The same serial as another clerk writes it (lower case, separators dropped or changed): an exact match."""
    return written.lower().replace("-", " ").replace("/", "").replace(".", "")


@dataclass(frozen=True)
class Recorded:
    """A record the generated register holds: enough to ask for it and to know it when it comes back."""

    state: str
    reference: str
    serial: str
    make: str


def write_files(folder: Path, total: int, rng: random.Random) -> tuple[list[tuple[str, Path, int]], list[Recorded]]:
    """The registers' CSV files, `total` rows in all, in the ten states' shares; each file with its state and row
    count, and a sample (about 2,000) of the records written."""
    names = spellings()
    files: list[tuple[str, Path, int]] = []
    sample: list[Recorded] = []
    keep = min(1.0, 2000 / max(total, 1))
    shares = sum(share for _, share in REGISTERS)
    left = total
    for n, (state, share) in enumerate(REGISTERS):
        count = left if n == len(REGISTERS) - 1 else total * share // shares
        left -= count
        path = folder / f"register-{state}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for i in range(count):
                make, country, models, caliber = rng.choice(MAKES)
                spelt = make if rng.random() < 0.8 else rng.choice(names[make])
                written = serial(rng)
                reference = f"{state}-{rng.randint(1995, 2025)}-{i:07d}"
                when = f"{rng.randint(1995, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                made_in = country if rng.random() < 0.7 else ""
                status, model, place = rng.choice(STATUSES), rng.choice(models), rng.choice(PLACES)
                writer.writerow((reference, status, written, spelt, model, caliber, made_in, when, place))
                if rng.random() < keep:
                    sample.append(Recorded(state, reference, written, spelt))
        files.append((state, path, count))
    return files, sample


def database(db: str, tmp: Path, name: str) -> tuple[str, str]:
    """A fresh database: (URL, PostgreSQL schema), the schema made by the first process that opens it."""
    if db == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'{name}.db'}", ""
    return POSTGRES, f"bench_records_{name}_{uuid.uuid4().hex[:8]}"


def drop(schema: str) -> None:
    """Drop a PostgreSQL schema the bench made, with everything in it (as the tests' `drop_schema`)."""
    if schema:
        statement = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c", statement],
            check=False,
            capture_output=True,
        )


def _high_water_mb(pid: int) -> float:
    """A running process's peak resident memory so far (VmHWM, MB); 0 once it has gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_measured(process: subprocess.Popen[bytes]) -> tuple[int, float, Any]:
    """Wait for a child: its wait status, its peak RSS (MB) and its resource usage.

    The peak is the highest VmHWM read while it ran (every 50 ms): the child's `ru_maxrss` (`os.wait4`,
    RUSAGE_CHILDREN) is no use here, as Linux starts it at the RSS of the process that forked it, this harness,
    which holds more than a small import does."""
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, peak, usage
        peak = max(peak, _high_water_mb(process.pid))
        time.sleep(0.05)


def load(env: Env, files: list[tuple[str, Path, int]], url: str, schema: str) -> dict[str, Any]:
    """Import every file through `python -m gateway records import FILE --state CC`, one process each, one after
    the other: the whole load's seconds and rows per second, and each import's rows, seconds and peak RSS."""
    variables = serve_env(env.tmp, env.url, env.pki, database_url=url, schema=schema)
    imports: list[dict[str, Any]] = []
    started = time.perf_counter()
    for state, path, count in files:
        out = path.with_suffix(".out")
        began = time.perf_counter()
        with out.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "records", "import", str(path), "--state", state],
                env=variables,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            status, peak, usage = wait_measured(process)
        process.returncode = os.waitstatus_to_exitcode(status)
        said = out.read_text(encoding="utf-8", errors="replace")
        took = re.search(r"took (\d+) row\(s\).*refused (\d+)", said)
        if process.returncode != 0 or took is None:
            raise RuntimeError(f"the import of {path.name} failed ({process.returncode}): {said[-800:]}")
        imports.append(
            {
                "state": state,
                "rows": count,
                "taken": int(took.group(1)),
                "refused": int(took.group(2)),
                "seconds": time.perf_counter() - began,
                "peak_rss_mb": peak,
                "ru_maxrss_mb": usage.ru_maxrss / 1024,  # at least this harness's RSS when it forked (see above)
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        )
    seconds = time.perf_counter() - started
    taken = sum(i["taken"] for i in imports)
    largest = max(imports, key=lambda i: i["rows"])
    smallest = min(imports, key=lambda i: i["rows"])
    return {
        "rows": taken,
        "refused": sum(i["refused"] for i in imports),
        "seconds": seconds,
        "rows_per_s": taken / seconds,
        "peak_rss_mb": max(i["peak_rss_mb"] for i in imports),
        "largest": largest,
        "smallest": smallest,
        "imports": imports,
    }


async def plan(url: str, schema: str, keys: list[str]) -> str:
    """The query plan of the store's candidates lookup for these shape keys, one line per step: SQLite's
    `EXPLAIN QUERY PLAN` of `register.Q_CANDIDATES` as its driver runs it, PostgreSQL's `EXPLAIN` of
    `register.CANDIDATES`."""
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}} if schema else {})
    try:
        async with engine.connect() as conn:
            if not schema:
                params: dict[str, Any] = {"shapes": keys, "gone": "withdrawn"}
                sql, positions, _, _ = rq.Q_CANDIDATES.compiled(engine.dialect, params)
                values = tuple(params[name] if i is None else params[name][i] for name, i in positions)
                steps = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values)).all()
                return "\n".join(str(step[-1]) for step in steps)
            statement = rq.CANDIDATES.params(b_shapes=keys)
            sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            steps = (await conn.execute(text("EXPLAIN " + sql))).all()
            return "\n".join(str(step[0]) for step in steps)
    finally:
        await engine.dispose()


def uses_index(found: str) -> bool:
    """Whether a plan probes `ix_records_shape` and scans no table."""
    scans = re.search(r"^\s*(SCAN records\b|.*Seq Scan)", found, re.MULTILINE)
    return "ix_records_shape" in found and scans is None


async def count(url: str, schema: str, table: str) -> int:
    """The rows of one of the store's tables."""
    args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_async_engine(url, connect_args=args)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608
    finally:
        await engine.dispose()


async def planner_statistics(url: str, schema: str) -> str:
    """On PostgreSQL, whether the planner has statistics of the register (and whether autovacuum would gather
    them): the lookup's plan rests on them. "" on SQLite, whose planner needs none to take the index."""
    if not schema:
        return ""
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        async with engine.connect() as conn:
            tuples = (
                await conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass"))
            ).scalar()
            autovacuum = (await conn.execute(text("SHOW autovacuum"))).scalar()
    finally:
        await engine.dispose()
    analyzed = f"analyzed ({float(tuples or 0):,.0f} rows)" if (tuples or 0) >= 0 else "never analyzed"
    return f"records {analyzed}; autovacuum {autovacuum}"


@dataclass(frozen=True)
class Ask:
    """One RecordQuery of the run: the serial and make asked, and the record (if any) that should be found."""

    serial: str
    make: str | None
    expect: Recorded | None
    score: str  # the score the expected record should come back with ("" when none is expected)


def asks(sample: list[Recorded], total: int, rng: random.Random) -> list[Ask]:
    """`total` queries, alternately for a recorded firearm (as another clerk writes its serial, or with a look-alike
    character; its make as recorded, as the alias list spells it otherwise, or not given) and for a serial the
    register does not hold."""
    names = spellings()
    absent = random.Random(rng.random())
    out = []
    for i in range(total):
        if i % 2 or not sample:
            make, *_ = absent.choice(MAKES)
            out.append(Ask(serial(absent), make, None, ""))
            continue
        record = rng.choice(sample)
        misread = look_alike(record.serial) if i % 4 == 0 else None
        canonical = next((m for m, spelt in names.items() if record.make in spelt), record.make)
        named = rng.choice((record.make, rng.choice(names.get(canonical, (canonical,))), None))
        asked = misread or written_otherwise(record.serial)
        score = "exact" if serial_key(asked) == serial_key(record.serial) else "probable"
        out.append(Ask(asked, named, record, score))
    return out


def _matches(body: bytes) -> list[tuple[str, str, str]]:
    """(reporting state, reference, score) of each Match of a RecordQueryResult."""
    root = etree.fromstring(body)
    return [
        (m.findtext(_T + "ReportingState") or "", m.findtext(_T + "Reference") or "", m.findtext(_T + "Score") or "")
        for m in root.iter(_T + "Match")
    ]


async def queries(env: Env, url: str, schema: str, wanted: list[Ask], sender: str = "BR") -> dict[str, Any]:
    """RecordQuery round trips against `serve` on the loaded register, one in flight, each timed from its publish to
    its RecordQueryResult's arrival on the sender's outbound queue; p50 / p99 in ms, and what the answers found."""
    process = start_serve(
        serve_env(env.tmp, env.url, env.pki, database_url=url, schema=schema), env.tmp / "serve-queries.log"
    )
    signer = Signer.from_files(env.pki.key_path(sender), env.pki.cert_path(sender))
    bodies = []
    for ask in wanted:
        root = samples.record_query(sender, ask.serial, make=ask.make)
        bodies.append((root.findtext(f"{_T}Header/{_T}MessageId") or "", signer.sign(root)))
    latencies: list[float] = []
    answers: list[bytes] = []
    connection = await aio_pika.connect(env.url)
    try:
        await until_declared(env.url, sender)
        channel = await connection.channel(publisher_confirms=True)
        consumer = await connection.channel()
        queue = await consumer.declare_queue(outbound_queue(sender), durable=True, passive=True)
        pending: dict[str, tuple[float, asyncio.Future[tuple[float, bytes]]]] = {}

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            arrived = time.perf_counter()
            found = _QUERY_ID.search(message.body) if message.type == "RecordQueryResult" else None
            waiting = pending.get(found.group(1).decode()) if found else None
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result((arrived, message.body))
            await message.ack()

        await queue.consume(on_message)
        loop = asyncio.get_running_loop()
        for message_id, body in bodies:
            answer: asyncio.Future[tuple[float, bytes]] = loop.create_future()
            pending[message_id] = (time.perf_counter(), answer)
            await publish(channel, sender, body, message_id)
            arrived, result = await asyncio.wait_for(answer, timeout=30)
            latencies.append((arrived - pending[message_id][0]) * 1000)
            answers.append(result)
    finally:
        await connection.close()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    found = {"exact": 0, "probable": 0, "missed": 0, "wrong_score": 0}
    absent_matched = 0
    for ask, body in zip(wanted, answers, strict=True):
        matches = _matches(body)
        if ask.expect is None:
            absent_matched += bool(matches)
            continue
        score = next((s for st, ref, s in matches if (st, ref) == (ask.expect.state, ask.expect.reference)), None)
        if score is None:
            found["missed"] += 1
        else:
            found[score if score == ask.score else "wrong_score"] += 1
    present = sum(1 for a in wanted if a.expect is not None)
    return {
        "queries": len(wanted),
        "present": present,
        "absent": len(wanted) - present,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "found": found,
        "absent_matched": absent_matched,
    }


def firearms(sample: list[Recorded], rng: random.Random) -> Callable[[int], tuple[str, str]]:
    """The trace requests' firearms: every `HIT_EVERY`-th a recorded one (its serial and make as recorded), the
    others serials the register does not hold, with makes of the same list."""
    misses = random.Random(rng.random())

    def firearm(i: int) -> tuple[str, str]:
        if sample and i % HIT_EVERY == HIT_EVERY // 2:
            record = sample[(i // HIT_EVERY) % len(sample)]
            return record.serial, record.make
        make, *_ = misses.choice(MAKES)
        return serial(misses), make

    return firearm


def _vhost(env: Env, bodies: list[tuple[str, str, bytes]]) -> Env:
    """`env`'s PKI and folder on a fresh vhost of its own, with these bodies."""
    vhost = f"tracegate-bench-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return Env(env.url.replace(env.vhost, vhost), vhost, env.tmp, env.pki, bodies)


async def plans_of(url: str, schema: str, keys: list[str]) -> dict[str, str]:
    """The candidates query's plan for one shape key, for 16 (the closed loop's requests in flight) and for a full
    batch, with the planner's statistics as they stand."""
    return {
        f"{n} shape key{'s' if n > 1 else ''}": await plan(url, schema, keys[:n])
        for n in sorted({1, min(16, len(keys)), len(keys)})
    }


async def trace_pairs(
    env: Env,
    db: str,
    seconds: float,
    repeat: int,
    firearm: Callable[[int], tuple[str, str]],
    empty: tuple[str, str],
    full: tuple[str, str],
    made: list[Env],
) -> list[dict[str, Any]]:
    """`repeat` pairs of trace-path runs (`throughput.run_tracegate`), the empty register and the loaded one, which
    of the two goes first alternating; each run on a vhost of its own with requests of its own (fresh message ids,
    so none is a repeat of an earlier run's)."""
    per_run = int(seconds * 400 + RATE * min(seconds, 10)) + 600  # as many requests as the throughput bench makes
    runs = []
    for i in range(repeat):
        pair: dict[str, Any] = {"first": "empty" if i % 2 == 0 else "full"}
        for which in ("empty", "full") if i % 2 == 0 else ("full", "empty"):
            run_env = _vhost(env, signed_requests(env.pki, per_run, firearm=firearm))
            made.append(run_env)
            pair[which] = await run_tracegate(run_env, db, seconds, RATE, database=empty if which == "empty" else full)
        runs.append(pair)
    return runs


def _median(runs: list[dict[str, Any]], which: str, *path: str) -> float:
    """The median over the runs of one figure of the empty or the loaded register's runs."""
    values = []
    for run in runs:
        value: Any = run[which]
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def trace_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of a set of pairs: throughput empty and loaded, their ratio and the cost in percent, the
    gateway's CPU per message and the latency at the fixed offered load."""
    empty_rate = _median(runs, "empty", "tracegate_msgs_per_s")
    full_rate = _median(runs, "full", "tracegate_msgs_per_s")
    return {
        "empty_msgs_per_s": empty_rate,
        "full_msgs_per_s": full_rate,
        "ratio": full_rate / empty_rate,
        "cost_percent": (1 - full_rate / empty_rate) * 100,
        "cpu_ms_per_message": {w: _median(runs, w, "cpu_ms_per_message", "tracegate") for w in ("empty", "full")},
        "fixed_load_ms": {
            w: {"p50": _median(runs, w, "p50_ms_at_200"), "p99": _median(runs, w, "p99_ms_at_200")}
            for w in ("empty", "full")
        },
        "runs": runs,
    }


async def one_db(
    db: str, total: int, seconds: float, repeat: int, queries_count: int, rng: random.Random
) -> dict[str, Any]:
    """Every figure for one database: load, plans, the trace path empty and loaded (alternated), and RecordQuery
    round trips, all on the register as the imports left it."""
    figures: dict[str, Any] = {"db": db, "seconds": seconds, "fixed_rate": RATE}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = make_env(tmp, 0)
        made: list[Env] = [env]
        full, empty = database(db, tmp, "full"), database(db, tmp, "empty")
        try:
            files, sample = write_files(tmp, total, rng)
            figures["load"] = load(env, files, *full)
            figures["records"] = figures["load"]["rows"]
            for _, path, _ in files:
                path.unlink()
            keys = [shape_key(r.serial) for r in sample[:BATCH]] or [shape_key("BER-D12345Z")]
            figures["statistics"] = await planner_statistics(*full)
            figures["plans"] = await plans_of(*full, keys)
            figures["uses_index"] = {k: uses_index(found) for k, found in figures["plans"].items()}
            runs = await trace_pairs(env, db, seconds, repeat, firearms(sample, rng), empty, full, made)
            figures.update(trace_figures(runs))
            figures["hits"] = await count(*full, "record_hits")
            figures["traces_in_loaded_runs"] = await count(*full, "traces")
            query_env = _vhost(env, [])
            made.append(query_env)
            figures["query"] = await queries(query_env, *full, asks(sample, queries_count, rng))
        finally:
            for e in made:
                e.close()
            drop(full[1])
            drop(empty[1])
    return figures


def _probes(uses: dict[str, bool]) -> str:
    """Which plans probe the index: "index probe" when all do, else each one's verdict."""
    if all(uses.values()):
        return "index probe of ix_records_shape"
    return ", ".join(f"{k.split()[0]}: {'probe' if ok else 'SCAN'}" for k, ok in uses.items()) + " keys"


def rows_of(r: dict[str, Any]) -> list[tuple[str, str]]:
    """One database's column of the table: (row name, figure)."""
    load, query = r["load"], r["query"]
    largest, smallest = load["largest"], load["smallest"]
    found, cpu, fixed = query["found"], r["cpu_ms_per_message"], r["fixed_load_ms"]
    return [
        ("records loaded (10 states' CSV files)", f"{load['rows']:,} ({load['refused']} refused)"),
        ("load, whole (tracegate records import)", f"{load['seconds']:.1f} s, {load['rows_per_s']:,.0f} rows/s"),
        (
            "import peak RSS, largest / smallest file",
            f"{largest['peak_rss_mb']:.0f} MB ({largest['rows']:,}) / {smallest['peak_rss_mb']:.0f} MB "
            f"({smallest['rows']:,})",
        ),
        ("lookup plan (candidates query)", _probes(r["uses_index"])),
        ("RecordQuery round trip p50 / p99", f"{query['p50_ms']:.1f} / {query['p99_ms']:.1f} ms"),
        (
            f"  {query['present']} present: exact / probable found",
            f"{found['exact']} / {found['probable']} (missed {found['missed']}, wrong score {found['wrong_score']})",
        ),
        (f"  {query['absent']} absent: answered with a match", f"{query['absent_matched']}"),
        ("trace path, register empty", f"{r['empty_msgs_per_s']:.0f} msgs/s"),
        (f"trace path, {r['records']:,} records", f"{r['full_msgs_per_s']:.0f} msgs/s"),
        ("ratio loaded / empty", f"{r['ratio']:.3f}"),
        ("cost of the check (goal: under 5 %)", f"{r['cost_percent']:+.1f} %"),
        ("gateway CPU ms/msg, empty / loaded", f"{cpu['empty']:.2f} / {cpu['full']:.2f}"),
        (
            f"at {r['fixed_rate']:.0f} msgs/s p50 / p99, empty",
            f"{fixed['empty']['p50']:.1f} / {fixed['empty']['p99']:.1f} ms",
        ),
        (
            f"at {r['fixed_rate']:.0f} msgs/s p50 / p99, loaded",
            f"{fixed['full']['p50']:.1f} / {fixed['full']['p99']:.1f} ms",
        ),
        ("hits in the loaded runs (1 % of requests)", f"{r['hits']:,} in {r['traces_in_loaded_runs']:,} traces"),
    ]


def table(results: list[dict[str, Any]]) -> None:
    """The figures a person reads: one column per database, then each one's plans and runs."""
    if not results:
        return
    first = results[0]
    print(
        f"the records register at {first['records']:,} records ({first['seconds']:.0f} s per trace-path run, "
        f"{len(first['runs'])} pair(s) alternated, ~4 KB signed requests, 16 in flight; fixed load "
        f"{first['fixed_rate']:.0f} msgs/s)"
    )
    columns = [rows_of(r) for r in results]
    width = max(36, *(len(v) for column in columns for _, v in column))
    print(f"  {'':<42} " + " ".join(f"{r['db']:<{width}}" for r in results).rstrip())
    for i, (name, _) in enumerate(columns[0]):
        print(f"  {name:<42} " + " ".join(f"{column[i][1]:<{width}}" for column in columns).rstrip())
    for r in results:
        if r["statistics"]:
            print(f"  {r['db']}: planner statistics after the imports: {r['statistics']}")
        for keys, found in r["plans"].items():
            print(f"  {r['db']}: plan of the candidates query, {keys}:")
            for line in found.splitlines():
                print(f"    {line if len(line) <= 110 else line[:100] + ' ...' + line[-8:]}")
        for i, run in enumerate(r["runs"], 1):
            print(
                f"  {r['db']}: run {i} ({run['first']} first): empty {run['empty']['tracegate_msgs_per_s']:.0f}, "
                f"loaded {run['full']['tracegate_msgs_per_s']:.0f} msgs/s"
            )


async def main(
    dbs: list[str], total: int = 1_500_000, seconds: float = 20.0, repeat: int = 1, queries_count: int = QUERIES
) -> list[dict[str, Any]]:
    """Each database in turn, on the same generated register (one seed)."""
    return [await one_db(db, total, seconds, repeat, queries_count, random.Random(31)) for db in dbs]
