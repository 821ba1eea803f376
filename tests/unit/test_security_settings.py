"""Security settings: Kafka TLS/SCRAM converters, the PAN key rule, bearer token hashes,
PAN masking and the listener's token bucket (pure logic; the real sockets and brokers are in
tests/integration/test_secure_*.py)."""

from __future__ import annotations

import os
import stat

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.config.ingest_security import (
    DEV_PAN_KEY,
    hash_token,
    load_ingest_security,
    load_pan_key,
    new_token,
    token_ok,
)
from tocsin.config.kafka_security import client_conf, kafka_security, load_kafka_security
from tocsin.connectors.ingest_guard import TokenBucket
from tocsin.contracts.pan import looks_like_pan, mask_pans, mask_text, tokenize
from tocsin.errors import ConfigError, SchemaError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("TOCSIN_KAFKA_", "TOCSIN_PAN_", "TOCSIN_INGEST_")) or k == "TOCSIN_DEV":
            monkeypatch.delenv(k)


def test_plaintext_is_the_default():
    assert client_conf("h:1") == {"bootstrap.servers": "h:1", "security.protocol": "plaintext"}
    assert load_kafka_security().faust() == {}


def test_sasl_ssl_converters(tmp_path, monkeypatch):
    from tocsin.services.certs import ensure_certs

    ca = ensure_certs(tmp_path / "c").ca
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pass\n")
    cfg = tmp_path / "client.json"
    cfg.write_bytes(orjson.dumps({"security_protocol": "SASL_SSL", "ssl_ca_file": str(ca),
                                  "sasl_username": "alice", "sasl_password_file": str(pw)}))
    monkeypatch.setenv("TOCSIN_KAFKA_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_USERNAME", "bob")  # the environment wins
    sec = kafka_security()
    conf = sec.confluent()
    assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("bob", "s3cret-pass")
    assert conf["ssl.ca.location"] == str(ca)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "s3cret" not in repr(sec) and "s3cret" not in sec.describe()
    kw = sec.aiokafka()
    assert (kw["security_protocol"], kw["sasl_mechanism"], kw["sasl_plain_password"]) == (
        "SASL_SSL", "SCRAM-SHA-512", "s3cret-pass")


def test_faust_credentials(tmp_path):
    from tocsin.services.certs import ensure_certs

    cs = ensure_certs(tmp_path / "c")
    sec = load_kafka_security(security_protocol="SASL_SSL", ssl_ca_file=str(cs.ca),
                              sasl_username="u", sasl_password="p")
    cred = sec.faust()["broker_credentials"]
    assert cred.mechanism.value == "SCRAM-SHA-512" and cred.username == "u"
    assert cred.protocol.value == "SASL_SSL" and cred.ssl_context is not None


@pytest.mark.parametrize("kw, words", [
    ({"security_protocol": "SASL_SSL"}, "TOCSIN_KAFKA_SASL_USERNAME|sasl_username"),
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "sasl_password"),
    ({"security_protocol": "TLS"}, "TOCSIN_KAFKA_SECURITY_PROTOCOL"),
    ({"ssl_ca_file": "/nonexistent/ca.pem"}, "ssl_ca_file"),
])
def test_bad_kafka_settings_name_the_field(kw, words):
    with pytest.raises(ConfigError, match=words):
        load_kafka_security(**kw)


def test_pan_key_required_outside_dev(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="TOCSIN_PAN_TOKEN_KEY"):
        load_pan_key()
    assert load_pan_key(dev=True) == DEV_PAN_KEY
    monkeypatch.setenv("TOCSIN_DEV", "1")
    assert load_pan_key() == DEV_PAN_KEY
    monkeypatch.delenv("TOCSIN_DEV")
    monkeypatch.setenv("TOCSIN_PAN_TOKEN_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_pan_key()
    monkeypatch.delenv("TOCSIN_PAN_TOKEN_KEY")
    f = tmp_path / "key"
    f.write_text("a-long-enough-production-key\n")
    monkeypatch.setenv("TOCSIN_PAN_TOKEN_KEY_FILE", str(f))
    assert load_pan_key() == b"a-long-enough-production-key"


def test_bearer_tokens_are_checked_against_hashes(tmp_path):
    tok, h = new_token()
    assert h == hash_token(tok) and tok not in h
    f = tmp_path / "hashes"
    f.write_text(f"# ops team\n{h}\n")
    sec = load_ingest_security(token_hashes_file=str(f))
    assert token_ok(f"Bearer {tok}", sec.hashes())
    assert not token_ok(f"Bearer {tok}x", sec.hashes())
    assert not token_ok(tok, sec.hashes()) and not token_ok(None, sec.hashes())
    with pytest.raises(ConfigError, match="TOCSIN_INGEST_TOKEN_HASHES"):
        load_ingest_security(token_hashes="md5:abc")


def test_ingest_limits_are_validated():
    assert load_ingest_security().iso_max_connections == 256
    with pytest.raises(ConfigError, match="TOCSIN_INGEST_ISO_IDLE_TIMEOUT_S"):
        load_ingest_security(iso_idle_timeout_s=0)


pans = st.text("0123456789", min_size=12, max_size=19)


@settings(max_examples=300, deadline=None)
@given(pan=pans, before=st.binary(max_size=40), after=st.binary(max_size=40))
def test_no_pan_survives_masking(pan, before, after):
    out = mask_pans(before + pan.encode() + after)
    assert pan.encode() not in out
    assert pan not in mask_text((before + pan.encode() + after).decode("latin-1"))


def test_mask_keeps_first_six_and_last_four():
    assert mask_pans(b'{"card_id":"4111111111111111"}') == b'{"card_id":"411111******1111"}'
    assert mask_text("pan 4111 1111 1111 1111.") == "pan 4111 11** **** 1111."
    assert mask_pans(b"stan 000123 amount 1250") == b"stan 000123 amount 1250"
    assert looks_like_pan("4111-1111-1111-1111") and not looks_like_pan("tok_ab12")
    assert tokenize("4111111111111111", b"k") == tokenize("4111111111111111", b"k")
    assert tokenize("4111111111111111", b"k") != tokenize("4111111111111111", b"k2")


def test_token_bucket_delays_beyond_the_burst():
    b = TokenBucket(rate=10.0, burst=3)
    delays = [b.delay() for _ in range(5)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert 0.09 < delays[3] < 0.11 and 0.19 < delays[4] < 0.21 and b.delayed == 2


def test_certificates_are_private(tmp_path):
    from cryptography import x509

    from tocsin.services.certs import ensure_certs

    cs = ensure_certs(tmp_path / "certs")
    assert stat.S_IMODE(cs.dir.stat().st_mode) == 0o700
    for p in (cs.key, cs.bundle, cs.dir / "ca-key.pem"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cs.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(cs.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(i) for i in ips.get_values_for_type(x509.IPAddress)}
    again = ensure_certs(tmp_path / "certs")
    assert again.cert.read_bytes() == cs.cert.read_bytes()  # reused, not regenerated


def test_http_card_fields_are_tokenised_or_refused():
    from tocsin.connectors.payments_ingest import _protect_card

    key = b"unit-test-pan-key-0123"
    obj = {"pan": "4111 1111 1111 1111", "card_id": None}
    _protect_card(obj, key)
    assert obj == {"card_id": tokenize("4111111111111111", key)}
    obj = {"card_id": "4111111111111111"}
    _protect_card(obj, key)
    assert obj["card_id"] == tokenize("4111111111111111", key)
    obj = {"card_id": "card-7"}  # already a token or an id: left alone
    _protect_card(obj, key)
    assert obj["card_id"] == "card-7"
    with pytest.raises(SchemaError, match="merchant_id.*card number"):
        _protect_card({"card_id": "c", "merchant_id": "4111-1111-1111-1111"}, key)
