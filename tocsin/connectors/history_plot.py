"""`--plot out.png` for people without Grafana: one panel per tag (matplotlib, lazy)."""

from __future__ import annotations

from tocsin.errors import TocsinError


def plot_readings(rows: list[dict], path: str, title: str = "",
                  events: list[dict] | None = None) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise TocsinError("plots need matplotlib: pip install 'tocsin[plot]'") from exc
    tags = sorted({r["tag"] for r in rows})
    if not tags:
        raise TocsinError("nothing to plot: the query returned no readings")
    fig, axes = plt.subplots(len(tags), 1, figsize=(10, 2.2 * len(tags)), sharex=True,
                             squeeze=False)
    for ax, tag in zip(axes[:, 0], tags):
        pts = [r for r in rows if r["tag"] == tag]
        ax.plot([r["time"] for r in pts], [r["value"] for r in pts], lw=0.9)
        ax.set_ylabel(tag, fontsize=8)
        for e in events or []:
            if e.get("tag") == tag:
                ax.axvline(e["time"], color="red" if e["event"] == "raised" else "green",
                           ls="--", lw=0.8)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
