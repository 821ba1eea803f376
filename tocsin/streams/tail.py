"""Follow an alert topic and print each event readably (rich)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from rich.console import Console
from rich.markup import escape

from tocsin.contracts.alerts import Alert
from tocsin.streams.follow import follow, tail_consumer

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_EVENT = {"raised": "RAISED", "updated": "UPDATED", "acknowledged": "ACKED", "cleared": "cleared"}


_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertFilter:
    """What `tocsin alerts tail` and `list` show: assets (any of), the least severity, fault
    types (any of; a fused alert's most probable type) and kinds (threshold, fusion)."""

    assets: frozenset[str] = frozenset()
    min_severity: str | None = None
    fault_types: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    def __call__(self, a: Alert) -> bool:
        if self.assets and a.asset not in self.assets:
            return False
        if self.min_severity and _RANK[a.severity.value] < _RANK[self.min_severity]:
            return False
        if self.kinds and a.kind not in self.kinds:
            return False
        if self.fault_types:
            ft = a.details.get("fault_type") if a.kind == "fusion" else None
            if ft not in self.fault_types:
                return False
        return True


def format_alert(a: Alert) -> str:
    when = datetime.fromtimestamp(a.source_ts / 1e9, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    lat_ms = (a.emitted_ts - a.source_ts) / 1e6
    style = _STYLE.get(a.severity.value, "")
    extra = ""
    if a.kind == "fusion" and isinstance(a.details.get("posterior"), dict):
        post = sorted(a.details["posterior"].items(), key=lambda kv: -kv[1])[:3]
        extra = "  [bold]" + " ".join(f"{k}={v:.2f}" for k, v in post) + "[/]"
    return (f"{when} [{style}]{_EVENT[a.event.value]:>8} {a.severity.value:<8}[/] "
            f"{a.alert_id}  {a.message}{extra}  [dim](source->worker {lat_ms:.1f} ms)[/]")


def tail_alerts(bootstrap: str, topic: str, *, from_beginning: bool = False,
                until: Callable[[], bool] = lambda: False,
                on_alert: Callable[[Alert], None] | None = None,
                console: Console | None = None,
                only: Callable[[Alert], bool] | None = None) -> int:
    """Print alerts until Ctrl-C or `until()` is true; return how many were shown."""
    console = console or Console(soft_wrap=True)
    consumer = tail_consumer(bootstrap, [topic], from_beginning=from_beginning)
    shown = 0
    try:
        for alert in follow(consumer, Alert.decode, until=until,
                            on_error=lambda line: console.print(f"[red]{escape(line)}[/]")):
            try:  # a record that decodes but cannot be shown is one red line, not the end
                if only is not None and not only(alert):
                    continue
                line = format_alert(alert)
            except Exception as exc:
                console.print(f"[red]{escape(f'cannot show alert {alert.alert_id}: {exc!r}')}[/]")
                continue
            console.print(line, highlight=False)
            shown += 1
            if on_alert:
                on_alert(alert)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return shown
