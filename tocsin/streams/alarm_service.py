"""The alarm-state service: owns the ISA-18.2 board (:mod:`tocsin.detectors.alarm_states`).

In: ``plant.alerts`` (lifecycle events of every kind), ``plant.alerts.acks`` (the CLI's acks)
and ``plant.alarm_actions`` (console requests), merged in order by a route into one partition
that the board operator owns (:mod:`tocsin.streams.alarm_ops`, exactly-once runtime: the
board's state in a changelog, so a kill -9 or a takeover changes no state and no audit
record). Out, in the same transactions: ``plant.alarm_audit`` (one record per operator or
system action, and rejected requests), ``plant.alarm_states`` (compacted: each listed alarm
and each shelved or out-of-service point), acks forwarded to ``plant.alerts.acks`` for fused
alerts (the fusion worker then stops escalating). The notifier is called as changes happen:
after a crash, changes of the uncommitted batch are notified again (at least once).
`tocsin console` runs the service in-process; a second one of the same prefix is a standby.
The board is guarded by a lock (the runners and the view loop are threads).
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

from confluent_kafka import Consumer, Producer, TopicPartition

from tocsin.config.kafka_security import client_conf
from tocsin.contracts import alarm_actions as aa
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert
from tocsin.contracts.topics import ALERT_ACKS as ACKS
from tocsin.contracts.topics import ALERTS, DEADLETTER, PAY_LABELS, PAY_SCORES, SCORES
from tocsin.detectors.alarm_performance import AlarmRecord, alarm_point
from tocsin.detectors.alarm_states import (
    HIDDEN,
    Alarm,
    AlarmActionError,
    AlarmBoard,
    BoardConfig,
    Change,
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
        self._producer: Producer | None = None
        self.ready = threading.Event()  # set while this process holds the board
        self.runtime_settings: dict = {}  # overrides for the runners (worker_name, ...)
        self.runners: list = []
        self.op = None

    @property
    def producer(self) -> Producer:
        """For console requests and labels (the board's own outputs go through the runner's
        transactions); made on first use."""
        if self._producer is None:
            self._producer = Producer(client_conf(self.bootstrap, {"linger.ms": 5}))
        return self._producer

    def t(self, name: str) -> str:
        return self.prefix + name

    # ------------------------------------------------------------------ lifecycle
    def start(self, ready_timeout: float = 60.0) -> None:
        """Start the route and the board on the runtime, and the view loop; wait (at most
        ``ready_timeout``) until this process holds the board, restored. A second service of
        the same prefix stays a standby until the first one goes."""
        from tocsin.config.worker import load_settings
        from tocsin.connectors.kafka_admin import ensure_topics
        from tocsin.streams.alarm_ops import ALARM_IN, AlarmBoardOp, AlarmRoute
        from tocsin.streams.runtime.runner import Runner

        ensure_topics(self.bootstrap, [self.t(n) for n in (
            ALERTS, ACKS, aa.ACTIONS_TOPIC, aa.AUDIT_TOPIC, SCORES, PAY_SCORES, PAY_LABELS,
            DEADLETTER)], self.partitions)
        ensure_topics(self.bootstrap, [self.t(ALARM_IN)], 1)  # the board is one partition
        _ensure_compacted(self.bootstrap, self.t(aa.STATES_TOPIC), self.partitions)
        settings = load_settings(broker=self.bootstrap, topic_prefix=self.prefix,
                                 **self.runtime_settings)
        self.op = AlarmBoardOp(self)
        self.runners = [Runner(AlarmRoute(self.prefix), settings), Runner(self.op, settings)]
        for r in self.runners:
            self._threads.append(r.start())
        th = threading.Thread(target=self._view_loop, name="tocsin-view-loop", daemon=True)
        th.start()
        self._threads.append(th)
        if not self.ready.wait(ready_timeout):
            log.warning("alarm board not assigned to this process within %.0fs (another "
                        "service of prefix %r holds it?)", ready_timeout, self.prefix)

    def stop(self) -> None:
        self._stop.set()
        for r in self.runners:
            r.stop()
        for th in self._threads:
            th.join(20)
        if self._producer is not None:
            self._producer.flush(10)

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
    def on_input(self, kind: bytes, value: bytes, out) -> None:
        """One record of plant.alarm.in (the board operator's thread): ``kind`` a = alert
        event, k = ack (plant.alerts.acks), r = console request."""
        if kind == b"a":
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
            self._publish(ch, out, extra={a.alert_id: {"fault_type": d.get("fault_type"),
                                                       "kind": a.kind}})
        elif kind == b"k":
            ack = Ack.decode(value)
            try:
                with self.lock:
                    ch = self.board.act("ack", ack.alert_id, ack.user, ack.ts,
                                        ack.note or "acknowledged (plant.alerts.acks)")
            except AlarmActionError as exc:
                # already acknowledged here (our own forwarded ack) or not listed
                self._publish(list(exc.changes), out)
                return
            self._publish(ch, out, origin="acks")
        else:
            req = aa.AlarmAction.decode(value)
            try:
                with self.lock:
                    ch = self.board.act(req.action, req.alert_id, req.user, req.ts,
                                        req.reason, req.until_ts)
            except AlarmActionError as exc:
                ch = list(exc.changes) + [Change("rejected", req.alert_id, "", req.user, req.ts,
                                                 f"{req.action}: {exc}", "", "normal")]
            fused = self.kinds.get(req.alert_id) == "fusion"
            self._publish(ch, out, role=req.role, origin=req.origin)
            if req.action == "ack" and fused and ch[-1].action == "ack":
                out.send(self.t(ACKS), req.alert_id.encode(),
                         Ack(req.alert_id, req.user, req.ts, req.reason).encode())

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

    def advance(self, now_ns: int, out) -> None:
        """Live mode (the board operator's tick): event time also moves with the wall clock,
        so shelving expires while the plant is quiet (replays of old data: wall_clock=False)."""
        with self.lock:
            ch = self.board.advance(now_ns)
        if ch:
            self._publish(ch, out)

    # ------------------------------------------------------------------ output
    def _publish(self, changes: list[Change], out, role: str = "", origin: str = "",
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
                out.send(self.t(aa.AUDIT_TOPIC), c.point.encode(), rec.encode())
            self._notify(c, snap.get(c.alert_id), (extra or {}).get(c.alert_id, {}))
        with self.lock:
            for aid, a in snap.items():
                if aid and a is None:
                    self.kinds.pop(aid, None)  # only listed alarms keep their kind
        if self.op is not None:
            self.op.write({k: v for k, v in snap.items() if k},
                          {k: v for k, v in points.items() if k}, out)
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
