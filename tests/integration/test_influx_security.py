"""InfluxDB secrets and TLS on a real influxd: `influx_up` generates a token for the install,
kept 0600 and out of the state file; an https influxd (local CA) is written to and queried
through the same client settings as the sink and the history commands, and a client that
does not trust the CA is refused."""

from __future__ import annotations

import stat
import time

import numpy as np
import orjson
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.integration.kafka_helpers import produce
from tests.integration.secure_helpers import Spawner, conf, dump_topics, env_for, find_secrets
from tocsin.config.influx_security import load_influx_security
from tocsin.connectors.history import History
from tocsin.contracts import ReadingsFrame, topics
from tocsin.services.certs import ensure_certs, write_secret
from tocsin.services.influx import InfluxServer
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration


def test_install_token_is_generated_private_and_not_in_the_state(tmp_path, monkeypatch):
    from tocsin.services import registry
    from tocsin.services.influx import provision
    from tocsin.services.kafka import cache_dir

    binary = provision()  # the cached influxd, before the cache moves to tmp_path
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / binary.parent.parent.name).symlink_to(binary.parent.parent)
    monkeypatch.setenv("TOCSIN_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    state = registry.influx_up(port=free_port())
    try:
        token_file = tmp_path / "cache" / "run" / "influx-secrets" / "token"
        token = token_file.read_text().strip()
        assert len(token) >= 40 and token != registry.LEGACY_INFLUX_TOKEN
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        state_file = tmp_path / "cache" / "run" / "influx.json"
        assert token.encode() not in state_file.read_bytes()
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert orjson.loads(state_file.read_bytes())["token_file"] == str(token_file)
        # a client finds the install's token without being told (no token on any argv)
        monkeypatch.delenv("TOCSIN_INFLUX_TOKEN", raising=False)
        h = History(state["url"], load_influx_security().token_value(), "tocsin", "tocsin")
        assert h.query('buckets() |> filter(fn: (r) => r.name == "tocsin")')
        with pytest.raises(Exception, match="401|nauthorized"):  # the old public token: no
            History(state["url"], "tocsin-local-token", "tocsin", "tocsin").query("buckets()")
    finally:
        registry.influx_down()


def test_https_influxd_with_the_sinks_client_settings(tmp_path, monkeypatch, kafka, prefix):
    cs = ensure_certs(tmp_path / "certs", "influxd")
    srv = InfluxServer(tmp_path / "influx", port=free_port(), tls_cert=cs.cert,
                       tls_key=cs.key, tls_ca=cs.ca).start()
    try:
        assert srv.url.startswith("https://")
        monkeypatch.setenv("TOCSIN_INFLUX_SSL_CA_FILE", str(cs.ca))
        kw = load_influx_security().client_kwargs(srv.url, srv.token)
        assert kw["ssl_ca_cert"] == str(cs.ca) and kw["verify_ssl"] is True
        now = time.time_ns()
        with InfluxDBClient(**kw, org=srv.org) as c:  # what InfluxHistorySink builds
            c.write_api(write_options=SYNCHRONOUS).write(
                srv.bucket, record=f"readings,asset=tls-1,tag=temp value=42.5 {now}")
        rows = History(srv.url, srv.token, srv.org, srv.bucket).query(
            f'from(bucket: "{srv.bucket}") |> range(start: -1h) '
            f'|> filter(fn: (r) => r.asset == "tls-1")')
        assert [r["_value"] for r in rows] == [42.5]
        # the real sink, over https, its token from a 0600 file (not on its command line)
        token_file = write_secret(tmp_path / "influx-token", srv.token)
        run = Spawner(tmp_path, env_for(kafka, None, prefix, TOCSIN_INFLUX_TOKEN_FILE=str(
            token_file), TOCSIN_INFLUX_SSL_CA_FILE=str(cs.ca)))
        try:
            run("sink", "influx", "--influx-url", srv.url, "--flush", "0.2", name="sink")
            t0 = (int(time.time()) - 60) * 10**9
            fr = ReadingsFrame("tls-2", ["temp"] * 5, np.array([t0 + i * 10**8 for i in
                               range(5)]), np.arange(5.0), np.zeros(5, np.uint8))
            produce(kafka, prefix + topics.READINGS, [(b"tls-2", fr.encode())])
            h = History(srv.url, srv.token, srv.org, srv.bucket)
            deadline, got = time.monotonic() + 60, []
            while time.monotonic() < deadline and len(got) < 5:
                got = h.readings("tls-2", start="-1h")
                time.sleep(0.5)
            assert len(got) == 5
            assert not find_secrets({**run.logs(), **dump_topics(conf(kafka, None), prefix)},
                                    {"influx token": srv.token})
        finally:
            run.stop()
        monkeypatch.delenv("TOCSIN_INFLUX_SSL_CA_FILE")
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            History(srv.url, srv.token, srv.org, srv.bucket).query("buckets()")
    finally:
        srv.stop()
