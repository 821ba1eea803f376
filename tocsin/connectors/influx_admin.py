"""Retention and downsampling in InfluxDB: the raw bucket keeps `retention` (set at
onboarding), a rollup bucket keeps 1-minute means of the readings longer, filled by an
InfluxDB task that runs every minute. Idempotent: safe on every start."""

from __future__ import annotations

from influxdb_client import BucketRetentionRules, InfluxDBClient, TaskCreateRequest

from tocsin.config.influx_security import load_influx_security

ROLLUP_TASK = "tocsin-rollup-1m"


def rollup_bucket(bucket: str) -> str:
    return f"{bucket}_1m"


def rollup_flux(bucket: str, org: str) -> str:
    return f'''option task = {{name: "{ROLLUP_TASK}", every: 1m, offset: 10s}}

from(bucket: "{bucket}")
  |> range(start: -2m)
  |> filter(fn: (r) => r._measurement == "readings" and r._field == "value")
  |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
  |> to(bucket: "{rollup_bucket(bucket)}", org: "{org}")
'''


def ensure_rollups(url: str, token: str, org: str, bucket: str,
                   rollup_retention_days: int = 400, ca_file=None) -> None:
    with InfluxDBClient(**load_influx_security().client_kwargs(url, token, ca_file), org=org,
                        timeout=10_000) as client:
        buckets = client.buckets_api()
        org_obj = client.organizations_api().find_organizations(org=org)[0]
        if buckets.find_bucket_by_name(rollup_bucket(bucket)) is None:
            buckets.create_bucket(
                bucket_name=rollup_bucket(bucket), org_id=org_obj.id,
                retention_rules=BucketRetentionRules(
                    type="expire", every_seconds=rollup_retention_days * 86400))
        tasks = client.tasks_api()
        if not [t for t in tasks.find_tasks(name=ROLLUP_TASK)]:
            tasks.create_task(task_create_request=TaskCreateRequest(
                flux=rollup_flux(bucket, org), org_id=org_obj.id, status="active",
                description="1-minute means of plant readings, kept longer than raw data"))


def run_rollup_now(url: str, token: str, org: str, timeout: float = 30.0) -> None:
    """Start a run of the rollup task now (tests, backfills of the last two minutes) and
    wait until InfluxDB reports it finished."""
    import time

    from influxdb_client.rest import ApiException

    with InfluxDBClient(**load_influx_security().client_kwargs(url, token), org=org,
                        timeout=10_000) as client:
        tasks = client.tasks_api()
        task = tasks.find_tasks(name=ROLLUP_TASK)[0]
        run = tasks.run_manually(task.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = tasks.get_run(task.id, run.id)
            except ApiException as exc:  # queued runs are not found for a moment
                if exc.status != 404:
                    raise
                time.sleep(0.2)
                continue
            if r.status == "success":
                return
            if r.status in ("failed", "canceled"):
                raise RuntimeError(f"rollup task run {r.status}")
            time.sleep(0.2)
        raise RuntimeError("rollup task run did not finish in time")
