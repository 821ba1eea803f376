"""Turn readings frames into threshold alert events, one detector state per asset.

Pure logic (no Kafka, no Faust): the threshold agent is a thin shell around
:meth:`ThresholdAlerter.process`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tocsin.contracts.alerts import Alert, AlertEvent, Severity, alert_id
from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors import thresholds
from tocsin.detectors.thresholds import TagLimits, ThresholdDetector, Transition

_WORD = {"high": "above high limit", "low": "below low limit", "rate": "changing faster than"}


class ThresholdAlerter:
    def __init__(self, limits_by_asset: Mapping[str, Mapping[str, TagLimits]],
                 units: Mapping[tuple[str, str], str] | None = None):
        self._limits = limits_by_asset
        self._units = units or {}
        self._detectors: dict[str, ThresholdDetector] = {}
        self.unknown_frames = 0  # frames of assets without limits: counted, no state per asset
        self.touched: set[str] = set()  # assets whose state changed since take_touched()

    def detector(self, asset: str) -> ThresholdDetector | None:
        det = self._detectors.get(asset)
        if det is None:
            limits = self._limits.get(asset)
            if limits is None:
                return None
            det = self._detectors[asset] = ThresholdDetector(limits)
        return det

    def process(self, frame: ReadingsFrame, now_ns: int) -> list[Alert]:
        det = self.detector(frame.asset)
        if det is None:
            self.unknown_frames += 1
            return []
        transitions = det.update(frame.tags, frame.ts, frame.values, frame.quality)
        self.touched.add(frame.asset)
        return [self._alert(frame.asset, t, now_ns) for t in transitions]

    def take_touched(self) -> set[str]:
        out, self.touched = self.touched, set()
        return out

    def snapshot(self, asset: str) -> bytes | None:
        """The state of ``asset``'s detector as bytes (None: no detector)."""
        det = self._detectors.get(asset)
        return None if det is None else thresholds.snapshot(det)

    def restore(self, asset: str, data: bytes) -> bool:
        """Load ``asset``'s state; False (and nothing kept) for an asset without limits."""
        det = self.detector(asset)
        if det is None:
            return False
        thresholds.restore(det, data)
        return True

    def _alert(self, asset: str, t: Transition, now_ns: int) -> Alert:
        unit = self._units.get((asset, t.tag), "")
        if t.raised:
            what = (f"{asset} {t.tag} {t.value:.4g}{' ' + unit if unit else ''} "
                    f"{_WORD[t.rule]} {t.limit:.4g}")
            if t.rule == "rate":
                what += f" {unit}/s" if unit else "/s"
        else:
            what = f"{asset} {t.tag} back within its {t.rule} limit ({t.value:.4g})"
        return Alert(
            alert_id=alert_id(asset, "threshold", t.rule, t.tag, t.opened_ts),
            event=AlertEvent.RAISED if t.raised else AlertEvent.CLEARED,
            asset=asset, kind="threshold", rule=t.rule, tag=t.tag,
            severity=Severity(t.severity), value=t.value, limit=t.limit,
            source_ts=t.ts, opened_ts=t.opened_ts, emitted_ts=now_ns, message=what,
            details={"unit": unit} if unit else {},
        )


def alerter_from_plant(plant) -> ThresholdAlerter:
    """Build an alerter from a :class:`tocsin.config.plant.PlantConfig`."""
    limits = {a: plant.limits_for(a) for a in plant.assets}
    units = {(a, t): c.unit for a, ac in plant.assets.items() for t, c in ac.tags.items()}
    return ThresholdAlerter(limits, units)
