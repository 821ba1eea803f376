"""The operator's web console (`tocsin console`): alarms with ISA-18.2 states, assets, the
fraud review queue and the alarm-performance page. See docs/operators.md."""
