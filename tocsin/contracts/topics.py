"""Topic names (see DESIGN.md); created by :mod:`tocsin.connectors.kafka_admin`."""

from __future__ import annotations

READINGS = "plant.readings"
FEATURES = "plant.features"
SCORES = "plant.scores"
ALERTS = "plant.alerts"
DEADLETTER = "tocsin.deadletter"
ALL = (READINGS, FEATURES, SCORES, ALERTS, DEADLETTER)
# alert lifecycle (fusion worker): operators' acks in; open alerts out, compacted (key = alert
# id, a cleared alert leaves a tombstone), so `tocsin alerts list` reads only what is open
ALERT_ACKS = "plant.alerts.acks"
ALERTS_OPEN = "plant.alerts.open"
FUSION = (ALERT_ACKS, ALERTS_OPEN)
COMPACTED = (ALERTS_OPEN,)
# ISA-18.2 alarm states (the alarm-state service, issue 18): operator requests in, the audit
# trail out, and each listed alarm's state, compacted (key = alert id or point)
ALARM_ACTIONS = "plant.alarm_actions"
ALARM_AUDIT = "plant.alarm_audit"
ALARM_STATES = "plant.alarm_states"
ALARMS = (ALARM_ACTIONS, ALARM_AUDIT)


# imaging (issue 9): images in, findings out, keyed by study UID
IMAGING_STUDIES = "imaging.studies"
IMAGING_FINDINGS = "imaging.findings"
IMAGING = (IMAGING_STUDIES, IMAGING_FINDINGS, DEADLETTER)

# payments (fraud scoring); a separate tuple so ALL and the plant tooling stay as they are
TRANSACTIONS = "payments.transactions"
PAY_LABELS = "payments.labels"
PAY_SCORES = "payments.scores"
PAY_ALERTS = "payments.alerts"
# card stage -> terminal stage: transactions with card features, labels, watermarks; by terminal
PAY_BY_TERMINAL = "payments.by-terminal"
PAYMENTS = (TRANSACTIONS, PAY_LABELS, PAY_SCORES, PAY_ALERTS, PAY_BY_TERMINAL, DEADLETTER)
