"""`tocsin demo`: the whole slice on embedded defaults.

Kafka (started through `tocsin services` unless --broker points at one) -> simulated plant
served over OPC UA -> OPC UA connector -> plant.readings -> Faust worker (thresholds) ->
plant.alerts, shown here as they arrive. A fault is injected on pump-1 after a short while.

With trained anomaly models (`tocsin train`) the worker also scores every asset; with a trained
fusion network as well (`tocsin train fusion`), a fusion worker runs beside it and the fused
alerts (kind fusion: the most probable fault type and its posterior) show up in the same feed.
The fault then ends after ``fault_for`` seconds, so the fused alert is seen through its whole
lifecycle: raised, acknowledged (`tocsin alerts ack ID`, from another shell) and cleared.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import yaml
from rich.console import Console

from tocsin.connectors import kafka_admin
from tocsin.connectors.simulator.opcua_server import call_fault, endpoint_url
from tocsin.contracts import topics
from tocsin.demo.procs import spawn, stop_all, wait_log
from tocsin.services.registry import kafka_status, kafka_up, run_dir
from tocsin.streams.tail import tail_alerts

DATA = Path(__file__).resolve().parent.parent / "data"


def _wait_opcua(endpoint: str, timeout: float = 120.0) -> None:
    # 120 s: on a loaded machine the simulator's imports alone took over 30 s
    from asyncua import Client

    async def probe():
        async with Client(endpoint, timeout=2):
            return True

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(probe())
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _start_console(procs: dict, port: int, logs, env: dict, influx, console) -> None:
    """The web console on the demo's topics, with a demo-only operator login."""
    from tocsin.console.auth import add_user

    users = logs / "console-users.yaml"
    add_user(users, "demo", "operator", "demo")
    extra = {"TOCSIN_INFLUX_URL": influx["url"],
             "TOCSIN_INFLUX_TOKEN_FILE": influx["token_file"]} if influx else {}
    procs["console"] = spawn(["console", "--port", str(port), "--users", str(users)],
                             logs / "console.log", dict(env, **extra))
    console.print(f"[bold]console[/]: http://127.0.0.1:{port}/ (user demo, password demo: "
                  "for this demo only)")


def run_demo(*, duration: float = 0.0, fault: str = "over_temperature",
             fault_after: float | None = None, kafka_port: int = 9092, opcua_port: int = 4840,
             broker: str | None = None, prefix: str | None = None, protocol: str = "opcua",
             modbus_port: int = 5020, asset: str = "pump-1", history: bool = True,
             fault_for: float | None = None, console_port: int | None = None) -> int:
    console = Console(soft_wrap=True)
    from tocsin.models import artifacts, fusion_store

    model_root = artifacts.default_root()
    trained = artifacts.asset_types(model_root)
    network = fusion_store.newest(model_root) if trained else None
    if fault_after is None:
        # with models: let the 60 s windows and the LSTM-AE's 60 s sequence fill first
        fault_after = 90.0 if trained else 15.0
    if fault_for is None and network is not None:
        fault_for = 40.0  # then the fault ends, and the fused alert clears
    if prefix is None:
        # each demo run on its own topics: no frames or alarm states left over from the last
        prefix = f"demo-{int(time.time())}."
    logs = run_dir() / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    started_kafka = False
    if broker is None:
        if kafka_status() is None:
            console.print(f"[bold]kafka[/]: starting on 127.0.0.1:{kafka_port} "
                          "(first run downloads it from Maven Central) ...")
            started_kafka = True
        broker = kafka_up(kafka_port, kafka_port + 1)["bootstrap"]
    console.print(f"[bold]kafka[/]: {broker}, topics {prefix}* "
                  f"(follow with: tocsin alerts tail --prefix {prefix})")
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.ALL], 4)

    endpoint = endpoint_url(opcua_port)
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_DATA_DIR=str(logs / "worker-data"), PYTHONUNBUFFERED="1")
    spool = logs / f"spool-{protocol}"
    shutil.rmtree(spool, ignore_errors=True)  # a demo starts afresh
    if protocol == "modbus":
        cfg = yaml.safe_load((DATA / "modbus.yaml").read_text())
        for i, dev in enumerate(cfg["devices"]):
            dev["port"] = modbus_port + i
        cfg_path = logs / "modbus.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        scenario = {"faults": [{"asset": asset, "fault": fault, "start": fault_after,
                                "end": fault_after + fault_for if fault_for else None}]}
        (logs / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        sim = ["sim", "modbus", "--config", str(cfg_path),
               "--scenario", str(logs / "scenario.yaml")]
    else:
        cfg = yaml.safe_load((DATA / "opcua.yaml").read_text())
        cfg["endpoint"] = endpoint
        cfg_path = logs / "opcua.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        sim = ["sim", "opcua", "--port", str(opcua_port)]
    procs = {
        "simulator": spawn(sim, logs / "sim.log", env),
        "worker": spawn(["worker"], logs / "worker.log", env),
    }
    influx = None
    if history:
        from tocsin.services.registry import influx_up

        try:
            influx = influx_up()
            procs["history-sink"] = spawn(
                ["sink", "influx", "--influx-url", influx["url"]], logs / "history-sink.log",
                dict(env, TOCSIN_INFLUX_TOKEN_FILE=influx["token_file"]))  # not on argv
            console.print(f"[bold]history[/]: readings and alerts go to InfluxDB at "
                          f"{influx['url']} (bucket {influx['bucket']})")
        except Exception as exc:  # the alarms matter more than their history
            console.print(f"[yellow]history: InfluxDB not available ({exc}); running "
                          "without it[/]")
    if console_port:
        _start_console(procs, console_port, logs, env, influx, console)
    seen: list = []
    watch = None
    if trained:
        import threading

        from tocsin.streams.scores_view import ScoresWatch

        console.print(f"[bold]anomaly models[/]: {', '.join(trained)} from {model_root}; "
                      "scores every 10 s below")
        watch = ScoresWatch(broker, prefix + topics.SCORES, every=10.0, console=console)
        threading.Thread(target=watch.run, daemon=True, name="scores").start()
    else:
        console.print("[yellow]anomaly models: none trained yet (run `tocsin train` first to "
                      "see anomaly scores); thresholds only[/]")
    if network is not None:
        procs["fusion"] = spawn(["fusion", "worker"], logs / "fusion.log",
                                 dict(env, TOCSIN_DATA_DIR=str(logs / "fusion-data")))
        console.print(f"[bold]fusion[/]: network {network.parent.name}; fused alerts (kind "
                      "fusion, most probable fault type and posterior) below; acknowledge one "
                      f"with: tocsin alerts ack ID --broker {broker} --prefix {prefix}")
    elif trained:
        console.print("[yellow]fusion: no trained network (run `tocsin train fusion` to see "
                      "fused alerts with their fault type)[/]")
    injected_at = None
    try:
        if protocol == "modbus":
            wait_log(logs / "sim.log", "press-1-plc", procs["simulator"])
            console.print(f"[bold]simulator[/]: pump-1, motor-1, press-1 served over "
                          f"Modbus/TCP on ports {modbus_port}-{modbus_port + 2}")
        else:
            _wait_opcua(endpoint)
            console.print(f"[bold]simulator[/]: pump-1, motor-1, press-1 served at {endpoint}")
        procs["connector"] = spawn(["connect", protocol, "--config", str(cfg_path),
                                     "--spool-dir", str(spool)], logs / "connector.log", env)
        console.print(f"[bold]connector + worker[/]: running (logs in {logs})")
        t0 = time.monotonic()
        injected = ended = False

        def until() -> bool:
            nonlocal injected, ended
            now = time.monotonic() - t0
            if injected and not ended and fault_for and now >= fault_after + fault_for:
                if protocol == "opcua":
                    asyncio.run(call_fault(endpoint, asset, fault, clear=True))
                console.print(f"[bold magenta]>>> fault {fault!r} on {asset} ended at "
                              f"t={now:.0f}s[/]")
                ended = True
            if not injected and now >= fault_after:
                if protocol == "opcua":  # through the server's InjectFault method
                    asyncio.run(call_fault(endpoint, asset, fault))
                # (over Modbus the simulator was told when, with --inject)
                console.print(f"[bold magenta]>>> injected fault {fault!r} on {asset} "
                              f"at t={now:.0f}s[/]")
                injected = True
                nonlocal injected_at
                injected_at = time.monotonic()
            for name, p in procs.items():
                if p.poll() is not None:
                    console.print(f"[red]{name} exited with code {p.returncode}; "
                                  f"see {logs / (name[:3] if name == 'simulator' else name)}*.log[/]")
                    return True
            return bool(duration) and now >= duration

        console.print(f"[bold]alerts[/] on {prefix}{topics.ALERTS} "
                      f"(fault {fault!r} on {asset} in {fault_after:.0f}s"
                      + (f" for {fault_for:.0f}s" if fault_for else "") + "; Ctrl-C to stop):")
        tail_alerts(broker, prefix + topics.ALERTS, until=until, on_alert=seen.append,
                    console=console)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(procs.values(), timeout=15)
        if watch is not None:  # its consumer first: the broker is about to go away
            watch.stop()
        if started_kafka:
            from tocsin.services.registry import kafka_down

            kafka_down()
    raised = sum(1 for a in seen if a.event.value == "raised")
    console.print(f"[bold]demo finished[/]: {len(seen)} alert events, {raised} raised")
    fused = [a for a in seen if a.kind == "fusion"]
    for alert_id in dict.fromkeys(a.alert_id for a in fused):
        evs = [a for a in fused if a.alert_id == alert_id]
        first = evs[0]
        console.print(f"fused alert {alert_id}: {first.rule} (P={first.value:.2f}) on "
                      f"{first.asset}; events: {', '.join(a.event.value for a in evs)}")
    if watch is not None and injected_at is not None:
        moved = watch.summary(asset, injected_at)
        if moved:
            console.print(f"anomaly score of {asset} (larger model ratio, median): "
                          f"{moved[0]:.2f}x before the fault, {moved[1]:.2f}x after")
    if influx is not None and seen:
        first = next((a for a in seen if a.event.value == "raised"), seen[0])
        console.print(f"history: tocsin history around {first.alert_id} --plot around.png\n"
                      f"         tocsin history readings --asset {first.asset} --start -10m "
                      "--every 10s")
    return 0 if raised else 1
