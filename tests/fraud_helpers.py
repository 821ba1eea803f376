"""A tiny fraud model trained in seconds on simulated data, shared by unit and integration
tests (the real model is trained by `tocsin train fraud`)."""

from __future__ import annotations

from pathlib import Path


def train_tiny(out: Path) -> Path:
    from tocsin.connectors.simulator.payswitch import PaymentSwitch
    from tocsin.models.fraud_train import train_fraud

    sim = PaymentSwitch(customers=150, terminals=40, seed=3, frauds_per_day=2.0).generate(14)
    train_fraud(sim.transactions, sim.labels, sim.fraud, out, epochs=1, rf_trees=10,
                threads=1, data_note="simulated (test fixture)", log=lambda m: None)
    return out
