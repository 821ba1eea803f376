"""Line protocol of readings and alerts: escaping, bad-quality samples, idempotent keys."""

from __future__ import annotations

import numpy as np

from tocsin.connectors.influx_lines import alert_lines, readings_lines
from tocsin.contracts import Alert, AlertEvent, ReadingsFrame, Severity


def test_readings_lines_escape_and_keep_bad_quality_without_value():
    f = ReadingsFrame("line 2,pump", ["temp=x", "flow"], np.array([5, 6]),
                      np.array([61.5, np.nan]), np.array([0, 2], np.uint8))
    assert readings_lines(f) == [
        r"readings,asset=line\ 2\,pump,tag=temp\=x value=61.5,quality=0i 5",
        r"readings,asset=line\ 2\,pump,tag=flow quality=2i 6",
    ]


def test_alert_line_strings_are_quoted_and_time_is_the_source_time():
    a = Alert("p:1", AlertEvent.RAISED, "p", "threshold", "high", "t", Severity.WARNING, 9.5,
              9.0, 123, 100, 999, 'say "hi"\\')
    (line,) = alert_lines(a)
    assert line == ('alerts,asset=p,tag=t,rule=high,kind=threshold,severity=warning,'
                    'event=raised value=9.5,limit=9.0,alert_id="p:1",'
                    r'message="say \"hi\"\\",opened_ts=100i 123')
