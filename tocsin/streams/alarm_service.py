"""The alarm-state service: owns the ISA-18.2 board (:mod:`tocsin.detectors.alarm_states`).

In: ``plant.alerts`` (lifecycle events of every kind), ``plant.alerts.acks`` (the CLI's acks)
and ``plant.alarm_actions`` (console requests), as one consumer group, so a restart resumes
where it stopped. Out: ``plant.alarm_audit`` (one record per operator or system action, and
rejected requests), ``plant.alarm_states`` (compacted: each listed alarm and each shelved or
out-of-service point; read back on start, so shelving survives a restart), acks forwarded to
``plant.alerts.acks`` for fused alerts (the fusion worker then stops escalating), and the
notifier. Run ONE per topic prefix (it is the states' single writer); `tocsin console` runs
it in-process. Kafka is read in threads (confluent-kafka); the board is guarded by a lock.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from tocsin.config.kafka_security import client_conf
from tocsin.contracts import alarm_actions as aa
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert
from tocsin.contracts.topics import ALERT_ACKS as ACKS
from tocsin.contracts.topics import ALERTS, PAY_LABELS, PAY_SCORES, SCORES
from tocsin.detectors.alarm_performance import AlarmRecord, alarm_point
from tocsin.detectors.alarm_states import (
    HIDDEN,
    Alarm,
    AlarmActionError,
    AlarmBoard,
    BoardConfig,
    Change,
    PointState,
)
from tocsin.errors import SchemaError

log = logging.getLogger("tocsin.alarms")
_FIRING = {"unacknowledged", "acknowledged"}


class AlarmService:
    def __init__(self, bootstrap: str, prefix: str = "", config: BoardConfig | None = None, *,
                 notifier=None, wall_clock: bool = True, partitions: int = 2):
        self.bootstrap, self.prefix, self.partitions = bootstrap, prefix, partitions
        self.board = AlarmBoard(config or BoardConfig())
        self.lock = threading.RLock()
        self.notifier = notifier
        self.wall_clock = wall_clock
        self.kinds: dict[str, str] = {}  # alert id -> threshold | fusion
        self.fusion: dict[str, dict] = {}  # asset -> newest fused details (posterior, tags)
        self.scores: dict[str, dict] = {}  # asset -> newest scores
        self.audit: deque = deque(maxlen=500)
        self.history: deque = deque(maxlen=200_000)  # AlarmRecords seen (the report page)
        self.review: OrderedDict = OrderedDict()  # txn id -> flagged fraud score (queue)
        self.listeners: list[Callable[[str, object], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.producer = Producer(client_conf(bootstrap, {"linger.ms": 5}))
        self.ready = threading.Event()

    def t(self, name: str) -> str:
        return self.prefix + name

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        from tocsin.connectors.kafka_admin import ensure_topics

        ensure_topics(self.bootstrap, [self.t(n) for n in (
            ALERTS, ACKS, aa.ACTIONS_TOPIC, aa.AUDIT_TOPIC, SCORES, PAY_SCORES, PAY_LABELS)],
            self.partitions)
        _ensure_compacted(self.bootstrap, self.t(aa.STATES_TOPIC), self.partitions)
        self._restore()
        for fn in (self._state_loop, self._view_loop) + ((self._clock,) if self.wall_clock
                                                          else ()):
            th = threading.Thread(target=fn, name=f"tocsin-{fn.__name__}", daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(10)
        self.producer.flush(10)

    # ------------------------------------------------------------------ requests
    def submit(self, action: aa.AlarmAction) -> None:
        """Check the request against the current board (raises AlarmActionError), then
        publish it; the state loop applies it in topic order and writes the audit record."""
        with self.lock:
            copy.deepcopy(self.board).act(action.action, action.alert_id, action.user,
                                          action.ts, action.reason, action.until_ts)
        self.producer.produce(self.t(aa.ACTIONS_TOPIC), action.encode(),
                              key=action.alert_id.encode())
        self.producer.flush(10)

    def label(self, txn_id: str, fraud: bool, user: str) -> dict:
        """An analyst's verdict on a flagged transaction -> payments.labels (FraudLabel)."""
        from tocsin.contracts.payments import FraudLabel

        with self.lock:
            s = self.review.pop(txn_id, None)
        if s is None:
            raise AlarmActionError(f"transaction {txn_id} is not in the review queue")
        lab = FraudLabel(txn_id, s["card_id"], s["terminal_id"], s["ts"],
                         max(time.time_ns(), s["ts"]), fraud, f"review by {user}")
        self.producer.produce(self.t(PAY_LABELS), lab.encode(), key=s["terminal_id"].encode())
        self.producer.flush(10)
        self._emit("review", self.review_queue())
        return {"txn_id": txn_id, "fraud": fraud, "user": user}

    def review_queue(self) -> list[dict]:
        with self.lock:
            return list(self.review.values())[::-1]

    def view(self) -> list[dict]:
        with self.lock:
            rows = self.board.view()
        for r in rows:
            r["kind"] = self.kinds.get(r["alert_id"], "")
        return rows

    # ------------------------------------------------------------------ loops
    def _state_loop(self) -> None:
        c = Consumer(client_conf(self.bootstrap, {"enable.auto.commit": True,
                      "group.id": f"tocsin-alarm-states-{self.prefix or 'default'}",
                      "auto.offset.reset": "earliest"}))
        c.subscribe([self.t(ALERTS), self.t(ACKS), self.t(aa.ACTIONS_TOPIC)],
                    on_assign=lambda *_: self.ready.set())
        try:
            while not self._stop.is_set():
                msg = c.poll(0.2)
                if msg is None or msg.error():
                    continue
                try:
                    self._on_state_input(msg.topic(), msg.value())
                except SchemaError as exc:
                    log.warning("undecodable record at %s@%d: %s", msg.topic(), msg.offset(),
                                exc)
        finally:
            c.close()

    def _on_state_input(self, topic: str, value: bytes) -> None:
        if topic == self.t(ALERTS):
            a = Alert.decode(value)
            point = alarm_point(a.asset, a.kind, a.rule, a.tag)
            d = a.details or {}
            with self.lock:
                self.kinds[a.alert_id] = a.kind
                if a.kind == "fusion":
                    self.fusion[a.asset] = {"alert_id": a.alert_id, "ts": a.source_ts,
                                            "posterior": d.get("posterior", {}),
                                            "fault_type": d.get("fault_type"),
                                            "top_tags": (d.get("evidence") or {}).get(
                                                "top_tags", [])}
                ch = self.board.on_event(
                    a.event.value, a.alert_id, asset=a.asset, point=point,
                    severity=a.severity.value, ts=a.source_ts, opened_ts=a.opened_ts,
                    message=a.message,
                    acked_by=d.get("acked_by") if a.event.value == "acknowledged" else None)
                st = next((x.to_state for x in ch if x.alert_id == a.alert_id
                           and x.user == "process"), "")
                self.history.append(AlarmRecord(a.source_ts, a.alert_id, point, a.event.value,
                                                a.severity.value, a.opened_ts, st))
            self._publish(ch, extra={a.alert_id: {"fault_type": d.get("fault_type"),
                                                  "kind": a.kind}})
        elif topic == self.t(ACKS):
            ack = Ack.decode(value)
            try:
                with self.lock:
                    ch = self.board.act("ack", ack.alert_id, ack.user, ack.ts,
                                        ack.note or "acknowledged (plant.alerts.acks)")
            except AlarmActionError as exc:
                # already acknowledged here (our own forwarded ack) or not listed
                self._publish(list(exc.changes))
                return
            self._publish(ch, origin="acks")
        else:
            req = aa.AlarmAction.decode(value)
            try:
                with self.lock:
                    ch = self.board.act(req.action, req.alert_id, req.user, req.ts,
                                        req.reason, req.until_ts)
            except AlarmActionError as exc:
                ch = list(exc.changes) + [Change("rejected", req.alert_id, "", req.user, req.ts,
                                                 f"{req.action}: {exc}", "", "normal")]
            self._publish(ch, role=req.role, origin=req.origin)
            if req.action == "ack" and self.kinds.get(req.alert_id) == "fusion" and \
                    ch[-1].action == "ack":
                self.producer.produce(self.t(ACKS), Ack(req.alert_id, req.user, req.ts,
                                                        req.reason).encode(),
                                      key=req.alert_id.encode())

    def _view_loop(self) -> None:
        c = Consumer(client_conf(self.bootstrap, {"enable.auto.commit": False,
                      "group.id": f"tocsin-console-{uuid.uuid4().hex}"}))
        names = {self.t(SCORES): 0, self.t(PAY_SCORES): 500, self.t(aa.AUDIT_TOPIC): 200}
        _assign_tail(c, names)
        try:
            while not self._stop.is_set():
                msg = c.poll(0.2)
                if msg is None or msg.error():
                    continue
                try:
                    self._on_view_input(msg.topic(), msg.value())
                except SchemaError as exc:
                    log.warning("undecodable record at %s: %s", msg.topic(), exc)
        finally:
            c.close()

    def _on_view_input(self, topic: str, value: bytes) -> None:
        if topic == self.t(aa.AUDIT_TOPIC):
            rec = asdict(aa.AuditRecord.decode(value))
            with self.lock:
                self.audit.append(rec)
            self._emit("audit", rec)
        elif topic == self.t(SCORES):
            from tocsin.contracts.scores import Scores

            s = Scores.decode(value)
            row = {"asset": s.asset, "ts": s.ts, "version": s.model_version,
                   "top_tags": s.top_tags(), "models": {
                       k: None if m is None else {"score": m.score, "threshold": m.threshold,
                                                  "ratio": m.ratio}
                       for k, m in s.models.items()}}
            with self.lock:
                self.scores[s.asset] = row
        else:
            from tocsin.contracts.payments import FraudScore

            f = FraudScore.decode(value)
            if f.decision == "approve":
                return
            with self.lock:
                self.review[f.txn_id] = {"txn_id": f.txn_id, "card_id": f.card_id,
                                         "terminal_id": f.terminal_id, "score": f.score,
                                         "decision": f.decision, "ts": f.ts,
                                         "model_version": f.model_version}
                while len(self.review) > 500:
                    self.review.popitem(last=False)
            self._emit("review", None)

    def _clock(self) -> None:
        """Live mode: event time also moves with the wall clock, so shelving expires while
        the plant is quiet (replays of old data: wall_clock=False)."""
        while not self._stop.wait(1.0):
            with self.lock:
                ch = self.board.advance(time.time_ns())
            if ch:
                self._publish(ch)

    # ------------------------------------------------------------------ output
    def _publish(self, changes: list[Change], role: str = "", origin: str = "",
                 extra: dict | None = None) -> None:
        if not changes:
            return
        with self.lock:
            assets = {aid: a.asset for aid, a in self.board.alarms.items()}
            snap = {c.alert_id: self.board.alarms.get(c.alert_id) for c in changes}
            points = {c.point: self.board.points.get(c.point) for c in changes}
        for c in changes:
            if c.audit:
                rec = aa.AuditRecord(c.action, c.alert_id, c.point, c.user, c.ts, c.reason,
                                     c.from_state, c.to_state,
                                     assets.get(c.alert_id, c.point.split(" ")[0]), role,
                                     origin or ("system" if c.user == "system" else ""))
                self.producer.produce(self.t(aa.AUDIT_TOPIC), rec.encode(),
                                      key=c.point.encode())
            self._notify(c, snap.get(c.alert_id), (extra or {}).get(c.alert_id, {}))
        for aid, a in snap.items():
            if aid:
                self.producer.produce(self.t(aa.STATES_TOPIC), None if a is None else
                                      orjson.dumps({"alarm": asdict(a)}),
                                      key=f"alarm:{aid}".encode())
        for point, p in points.items():
            if point:
                self.producer.produce(self.t(aa.STATES_TOPIC), None if p is None else
                                      orjson.dumps({"point": point, "state": asdict(p)}),
                                      key=f"point:{point}".encode())
        self.producer.poll(0)
        self._emit("alarms", None)

    def _notify(self, c: Change, a: Alarm | None, extra: dict) -> None:
        if self.notifier is None or c.to_state in HIDDEN or c.action in ("ack", "comment",
                                                                          "reset", "rejected"):
            return
        if a is None and c.action != "cleared":
            return
        info = {"alert_id": c.alert_id, "point": c.point, "message": c.reason,
                "active": c.to_state in _FIRING, **extra}
        if a is not None:
            info.update(asset=a.asset, severity=a.severity, opened_ts=a.opened_ts,
                        message=a.message)
        else:
            info.setdefault("asset", c.point.split(" ")[0])
        self.notifier.on_alarm(info, c.ts)

    def _emit(self, kind: str, payload) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, payload)
            except Exception:  # a closed browser tab must not stop the service
                log.exception("listener failed")

    def _restore(self) -> None:
        """The board as the previous run left it (compacted plant.alarm_states)."""
        from tocsin.streams.compacted import read_compacted

        rows = read_compacted(self.bootstrap, self.t(aa.STATES_TOPIC))
        with self.lock:
            for key, value in rows.items():
                obj = orjson.loads(value)
                if key.startswith("alarm:"):
                    a = Alarm(**obj["alarm"])
                    self.board.alarms[a.alert_id] = a
                    self.board.now = max(self.board.now, a.last_ts)
                elif key.startswith("point:"):
                    self.board.points[obj["point"]] = PointState(**obj["state"])
        if rows:
            log.info("alarm states: restored %d record(s) from %s", len(rows),
                     self.t(aa.STATES_TOPIC))


def _assign_tail(c: Consumer, topics: dict[str, int]) -> None:
    """Assign every partition of each topic, ``n`` records before its end."""
    from tocsin.streams.compacted import watermarks

    parts = []
    for topic, n in topics.items():
        md = c.list_topics(topic, timeout=15).topics[topic]
        for p in md.partitions:
            lo, hi = watermarks(c, topic, p, 15)
            parts.append(TopicPartition(topic, p, max(lo, hi - n)))
    c.assign(parts)


def _ensure_compacted(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from tocsin.connectors.kafka_admin import replication_factor, wait_visible

    admin = AdminClient(client_conf(bootstrap))
    if name not in admin.list_topics(timeout=30).topics:
        for fut in admin.create_topics([NewTopic(name, partitions, replication_factor(bootstrap), config={
                "cleanup.policy": "compact"})], operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    wait_visible(admin, [name], 30)
