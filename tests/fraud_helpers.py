"""A tiny fraud model trained in seconds on simulated data, shared by unit and integration
tests (the real model is trained by `tocsin train fraud`)."""

from __future__ import annotations

from pathlib import Path


def tiny_data():
    from tocsin.connectors.simulator.payswitch import PaymentSwitch

    return PaymentSwitch(customers=150, terminals=40, seed=3, frauds_per_day=2.0).generate(14)


def train_tiny(out: Path, kind: str = "gbdt", **kw) -> Path:
    """``kw``: more arguments of ``train_fraud`` (the stack is left out unless asked for: a
    forest on every fixture would slow the unit tests for nothing)."""
    from tocsin.models.fraud_train import train_fraud

    sim = tiny_data()
    train_fraud(sim.transactions, sim.labels, sim.fraud, out, kind=kind, epochs=1, rf_trees=10,
                threads=1, data_note="simulated (test fixture)", log=lambda m: None,
                **{"max_iter": 60, "stack": False, **kw})
    return out
