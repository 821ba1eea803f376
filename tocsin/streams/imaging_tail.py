"""Follow `imaging.findings` and print each finding readably (rich)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from tocsin.contracts import topics
from tocsin.contracts.imaging import Finding
from tocsin.streams.follow import follow, tail_consumer


def format_finding(f: Finding) -> str:
    style = "bold red" if f.positive else "green"
    r = f.roi
    return (f"[{style}]{'NODULE?' if f.positive else 'clear':>7}[/] {f.modality} "
            f"{f.vendor or '-'} sop {f.sop_uid[-16:]}  p={f.probability:.3f} "
            f"(thr {f.threshold:.3f})  ROI rows {r['row']}-{r['row'] + r['rows']} cols "
            f"{r['col']}-{r['col'] + r['cols']}  {f.model['name']}/{f.model['branch']} on "
            f"{f.model['backend']}  batch {f.batch_size}  "
            f"[dim]end-to-end {f.latency_ms.get('end_to_end', 0):.1f} ms[/]")


def tail_findings(settings, timeout: float | None = None, *, from_beginning: bool = True,
                  until: Callable[[list[Finding]], bool] = lambda seen: False,
                  console: Console | None = None) -> list[Finding]:
    console = console or Console(soft_wrap=True)
    c = tail_consumer(settings.broker, [settings.topic(topics.IMAGING_FINDINGS)],
                      from_beginning=from_beginning, group="tocsin-imaging-tail")
    seen: list[Finding] = []
    try:
        for f in follow(c, Finding.decode, until=lambda: until(seen), timeout=timeout,
                        on_error=lambda line: console.print(f"[red]{escape(line)}[/]")):
            seen.append(f)
            console.print(format_finding(f), highlight=False)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return seen
