"""The load-aware switch: full model while it fits the latency budget, light tower when not.

After every micro-batch the shell reports what it saw (:class:`LoadSample`): how old the
batch's oldest transaction was when scoring started (queueing and consumer lag show up here),
how many messages still wait in the partitions (lag), the process's CPU use, GPU use where
known, and how long the model took. The switch keeps running per-transaction cost estimates of
both branches and predicts the latency the *full* model would give the next transaction:

    predicted = recent_wait + (lag + batch) * full_cost_per_txn * cpu_penalty + overhead

(``recent_wait`` is the largest wait of the last ``window_s`` seconds, so one slow batch
counts at once and is forgotten in bounded time whatever the batch rate; ``lag``
transactions in front of it must be scored first; ``cpu_penalty`` = 1 / (1 - cpu
above 70 %), because a saturated CPU stretches every call; the GPU, where present, counts the
same way). It moves to ``light`` when the prediction exceeds ``high`` x budget for
``trip_after`` consecutive batches, and back to ``full`` only when it has stayed below
``low`` x budget for ``recover_s`` seconds: hysteresis in both value and time, so it does
not flap. Pure logic: time comes in, nothing is read from the clock here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class LoadSample:
    now_s: float  # monotonic seconds (from the shell)
    batch: int  # transactions in the batch just scored
    wait_ms: float  # age of the batch's oldest transaction when scoring started
    lag: int  # messages still waiting in the assigned partitions
    model_ms: float  # model time of this batch
    branch: str  # which branch scored it
    cpu: float = 0.0  # process CPU use, 0..1 of one core
    gpu: float | None = None  # GPU utilisation 0..1 where present


@dataclass
class SwitchConfig:
    budget_ms: float = 120.0  # the p99 latency budget
    high: float = 0.8  # trip above this fraction of the budget ...
    low: float = 0.5  # ... recover below this one
    trip_after: int = 2  # consecutive batches over `high` before switching to light
    recover_s: float = 2.0  # seconds below `low` before switching back to full
    overhead_ms: float = 1.0  # decode, features and produce per batch (measured is better)
    alpha: float = 0.2  # EWMA weight of the per-transaction cost estimates
    window_s: float = 1.0  # the recent wait is the largest of this many seconds


@dataclass
class LoadAwareSwitch:
    cfg: SwitchConfig = field(default_factory=SwitchConfig)
    branch: str = "full"
    full_ms_per_txn: float = 0.05  # prior; replaced by measurements
    light_ms_per_txn: float = 0.01
    wait_ms: float = 0.0
    predicted_ms: float = 0.0
    switches: int = 0
    _over: int = 0
    _below_since: float | None = None
    history: list = field(default_factory=list)  # (now_s, branch) at each change
    _waits: deque = field(default_factory=deque)  # (now_s, wait_ms), a sliding max window

    def observe(self, s: LoadSample) -> str:
        """Feed one batch's observation; returns the branch for the next batch."""
        a = self.cfg.alpha
        per = s.model_ms / max(s.batch, 1)
        if s.branch == "full":
            self.full_ms_per_txn += a * (per - self.full_ms_per_txn)
        else:
            self.light_ms_per_txn += a * (per - self.light_ms_per_txn)
        w = self._waits
        while w and w[-1][1] <= s.wait_ms:  # monotonic deque: the front is the max
            w.pop()
        w.append((s.now_s, s.wait_ms))
        while w[0][0] < s.now_s - self.cfg.window_s:
            w.popleft()
        self.wait_ms = w[0][1]
        self.predicted_ms = self.predict(s)
        budget = self.cfg.budget_ms
        if self.branch == "full":
            self._over = self._over + 1 if self.predicted_ms > self.cfg.high * budget else 0
            if self._over >= self.cfg.trip_after:
                self._set("light", s.now_s)
        else:
            if self.predicted_ms < self.cfg.low * budget:
                if self._below_since is None:
                    self._below_since = s.now_s
                if s.now_s - self._below_since >= self.cfg.recover_s:
                    self._set("full", s.now_s)
            else:
                self._below_since = None
        return self.branch

    def predict(self, s: LoadSample) -> float:
        load = max(s.cpu, s.gpu or 0.0)
        penalty = 1.0 / max(1.0 - max(load - 0.7, 0.0) / 0.3 * 0.8, 0.2)
        return (max(self.wait_ms, s.wait_ms) + (s.lag + s.batch) * self.full_ms_per_txn * penalty
                + self.cfg.overhead_ms)

    def _set(self, branch: str, now_s: float) -> None:
        self.branch = branch
        self.switches += 1
        self._over = 0
        self._below_since = None
        self.history.append((now_s, branch))
