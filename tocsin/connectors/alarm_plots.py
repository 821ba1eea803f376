"""PNG plots of an alarm-performance report (matplotlib, imported lazily): the alarm rate per
10 minutes against the ISA-18.2 levels, the top bad actors, and the chattering / stale lists."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tocsin.detectors.alarm_performance import NS, AlarmReport
from tocsin.errors import TocsinError


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise TocsinError("plots need matplotlib: pip install 'tocsin[plot]'") from exc
    return plt


def plot_report(rep: AlarmReport, out_dir: str | Path) -> list[Path]:
    """Write rate.png, bad_actors.png and lists.png into ``out_dir``; return their paths."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    period_ns = (rep.stop_ts - rep.start_ts) / rep.periods
    t = [datetime.fromtimestamp((rep.start_ts + i * period_ns) / NS, timezone.utc)
         for i in range(rep.periods)]
    per_op = [n / rep.operators for n in rep.per_period]
    flood = rep.targets.get("flood_per_period", 10)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    width = period_ns / NS / 86400 * 0.9
    ax.bar(t, per_op, width=width, align="edge",
           color=["#c0392b" if v > flood else "#2e86c1" for v in per_op])
    ax.axhline(1, color="green", ls="--", lw=0.8, label="1 (very likely acceptable)")
    ax.axhline(2, color="orange", ls="--", lw=0.8, label="2 (maximum manageable)")
    ax.axhline(flood, color="red", ls=":", lw=0.8, label=f">{flood} = flood")
    ax.set_ylabel("alarms / operator / 10 min")
    ax.set_title(f"Alarm rate: avg {rep.avg_per_10min:.2f}, peak {rep.peak_per_10min:.0f}, "
                 f"{rep.flood_share:.1%} of periods in flood")
    ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    paths.append(_save(fig, out / "rate.png", plt))

    fig, ax = plt.subplots(figsize=(8, 0.4 * max(3, len(rep.top)) + 1))
    names = [d["point"] for d in rep.top][::-1]
    ax.barh(names, [d["count"] for d in rep.top][::-1], color="#884ea0")
    ax.set_xlabel("annunciations")
    ax.set_title(f"Top {len(rep.top)} bad actors: {rep.top_share:.0%} of all alarms")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out / "bad_actors.png", plt))

    rows = ([["chattering", d["point"], f"{d['max_in_window']} in a window, "
              f"{d['episodes']} episode(s)"] for d in rep.chattering]
            + [["stale", f"{d['point']} ({d['alert_id']})",
                f"active {d['active_s'] / 3600:.1f} h" + ("" if d["cleared"] else ", still")]
               for d in rep.stale]) or [["-", "no chattering or stale alarms", ""]]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1))
    ax.axis("off")
    table = ax.table(cellText=rows[:40], colLabels=["list", "alarm", "why"], loc="upper left",
                     cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    ax.set_title("Chattering and stale alarms")
    fig.tight_layout()
    paths.append(_save(fig, out / "lists.png", plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
