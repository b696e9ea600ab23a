"""Where a new trace request goes (ISACS 05.31, 8.1): export record, then import mark, then manufacture."""

from __future__ import annotations

from gateway.core.errors import ErrorCode, Refused
from gateway.core.model import Route, Rule, TraceRequestInfo
from gateway.routing.table import RoutingTable


def choose_destination(request: TraceRequestInfo) -> tuple[str, Rule, str]:
    """The state that most recently had jurisdiction, the rule that chose it, and why, in words."""
    if request.export_records:
        # Most recent by date; on a tie the later record in the document wins.
        latest = max(enumerate(request.export_records), key=lambda pair: (pair[1].date, pair[0]))[1]
        why = f"most recent export record ({latest.exporting_state} to {latest.importing_state}, {latest.date})"
        return latest.importing_state, Rule.EXPORT_RECORD, why
    if request.import_marks:
        dated = [(m.year, i, m) for i, m in enumerate(request.import_marks) if m.year is not None]
        if dated:
            mark = max(dated, key=lambda t: (t[0], t[1]))[2]
            why = f"most recent import mark ({mark.state}, {mark.year})"
        else:
            mark = request.import_marks[-1]
            why = f"last import mark ({mark.state}, undated)"
        return mark.state, Rule.IMPORT_MARK, why
    if request.country_of_manufacture:
        return request.country_of_manufacture, Rule.MANUFACTURE, "country of manufacture"
    raise Refused(
        ErrorCode.NO_ROUTE,
        "no export record, import mark or country of manufacture names a state to trace with (ISACS 05.31, 8.1)",
    )


def route(request: TraceRequestInfo, table: RoutingTable) -> Route:
    """Route a new request, or refuse it with the code that says why it cannot go."""
    sender = request.header.sender
    destination, rule, why = choose_destination(request)
    if destination == sender:
        raise Refused(
            ErrorCode.DESTINATION_IS_SENDER,
            f"the {why} names the requesting state {sender} itself; trace it domestically (ISACS 05.31, 7)",
        )
    entry = table.entry(destination)
    if entry is None:
        raise Refused(ErrorCode.NO_ROUTE, f"the {why} names {destination}, which is not in the routing table")
    if not entry.active:
        raise Refused(
            ErrorCode.DESTINATION_NOT_CONNECTED,
            f"the {why} names {destination}, which is suspended in the routing table",
        )
    party = table.party_for(destination)
    if party == sender:
        raise Refused(
            ErrorCode.DESTINATION_IS_SENDER,
            f"the {why} names {destination}, whose delegate is the requesting state {sender} itself",
        )
    return Route(
        origin=sender,
        party=party,
        rule=rule,
        table_version=table.version,
        on_behalf_of=destination if party != destination else None,
    )


def explain(request: TraceRequestInfo, table: RoutingTable) -> str:
    """One readable sentence on where a request would go and why; never raises for a refusal."""
    try:
        r = route(request, table)
    except Refused as refusal:
        return f"refused {refusal.code}: {refusal.detail}"
    _, _, why = choose_destination(request)
    via = f" (delegate receiving for {r.on_behalf_of})" if r.on_behalf_of else ""
    return f"to {r.party}{via} by rule {r.rule} — {why}; routing table {r.table_version}"
