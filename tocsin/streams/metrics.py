"""Prometheus metrics of the worker (prometheus-client), served on TOCSIN_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FRAMES = Counter("tocsin_frames_total", "Readings frames processed", ["agent"])
SAMPLES = Counter("tocsin_samples_total", "Samples processed", ["agent"])
ALERTS = Counter("tocsin_alert_events_total", "Alert events emitted", ["kind", "event"])
DEADLETTERS = Counter("tocsin_deadletters_total", "Messages sent to the dead-letter topic",
                      ["source_topic", "stage"])
# no asset label: ids come from the wire, and every label value is a series kept for ever
UNKNOWN_ASSETS = Counter("tocsin_unconfigured_asset_frames_total",
                         "Frames of assets that have no limits in the plant config")
REFUSED = Counter("tocsin_refused_total", "Samples or records refused by a bound or guard "
                  "(reason: a fixed set of names)", ["agent", "reason"])
PROCESS_SECONDS = Histogram("tocsin_frame_process_seconds", "Pure processing time per frame",
                            ["agent"], buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2))
FEATURE_ROWS = Counter("tocsin_feature_rows_total", "Feature messages (asset x boundary) emitted")
SCORES = Counter("tocsin_scores_total", "Score messages emitted")
# asset label only for configured assets (the scorer scores no others); bounded by the config
ANOMALOUS = Counter("tocsin_anomalous_ticks_total", "Ticks scored above a threshold", ["asset"])
MODEL_RELOADS = Counter("tocsin_model_reloads_total", "Model versions loaded", ["asset_type"])


def serve(port: int, host: str = "127.0.0.1", component: str | None = None) -> None:
    """/metrics, /healthz and /readyz on one port (tocsin.connectors.health); 0 = off."""
    from tocsin.connectors import health

    if component:
        health.configure(component)
    health.serve(port, host)


# payments (fraud scoring)
FRAUD_SCORED = Counter("tocsin_fraud_scored_total", "Transactions scored",
                       ["branch", "decision"])
FRAUD_BATCH = Histogram("tocsin_fraud_batch_size", "Transactions per scoring micro-batch",
                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
FRAUD_LATENCY = Histogram("tocsin_fraud_latency_seconds", "Ingest to score emitted",
                          buckets=(1e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.25, 1, 5))
FRAUD_SWITCHES = Counter("tocsin_fraud_branch_switches_total", "Load-aware switch moves",
                         ["to"])
# label values: the model's feature names (a fixed set of 38), never ids
FRAUD_OUT_OF_RANGE = Counter("tocsin_fraud_feature_out_of_range_total",
                             "Served feature values more than 50 training SDs from the training "
                             "mean (or changed, for a feature constant in training)", ["feature"])

# the runtime (tocsin.streams.runtime): one label per operator, a fixed small set
RT_RECORDS = Counter("tocsin_runtime_records_total", "Input records processed and committed",
                     ["operator"])
RT_BATCH = Histogram("tocsin_runtime_batch_records", "Input records per transaction",
                     ["operator"], buckets=(1, 4, 16, 64, 256, 1024, 4096))
RT_COMMIT = Histogram("tocsin_runtime_commit_seconds", "Produce + send offsets + commit "
                      "of one batch", ["operator"],
                      buckets=(1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 2.0))
RT_RESTORE = Histogram("tocsin_runtime_restore_seconds", "Restoring one assigned partition",
                       ["operator"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 120))
RT_REBALANCES = Counter("tocsin_runtime_rebalances_total", "Partition assignment changes",
                        ["operator", "kind"])
RT_ABORTS = Counter("tocsin_runtime_aborts_total", "Transactions aborted (state rewound)",
                    ["operator"])
