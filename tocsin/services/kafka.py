"""A real Apache Kafka broker (KRaft) provisioned from Maven Central.

One node is broker and controller at once; :mod:`tocsin.services.kafka_cluster` runs several
of them as one cluster.

No Docker engine is assumed. The broker's runtime classpath is assembled once with
`mvn dependency:copy-dependencies` into a cache outside the git tree
(``$TOCSIN_CACHE``, default ``~/.cache/tocsin``) and reused on every later start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tocsin.errors import ServiceError
from tocsin.services import toolchain

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # the version kafka_2.13 4.1.1 itself pulls in
READY_MARKER = "Kafka Server started"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.tocsin</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- kafka_2.13 does not pull a logging binding; slf4j is 1.7.x in Kafka 4.0-4.2 -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


# Broker settings that bound the time from a kill -9 (of a consumer, a transactional producer
# or a broker) to its work moving elsewhere. Each is explained in docs/cluster.md.
FAILOVER_SETTINGS = {
    # Kafka refuses client session timeouts under 6 s by default; workers use 3 s
    "group.min.session.timeout.ms": "1000",
    # the same floors for KIP-848 ("consumer" protocol) groups, whose session is set per group
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    # the first join of an empty group is not held back 3 s waiting for more members
    "group.initial.rebalance.delay.ms": "0",
    # how often the coordinator looks for transactions past their timeout (default 10 s): a
    # dead producer's open transaction is aborted at most 1 s after its timeout, so
    # read_committed consumers (whose position stops at the open transaction) move on
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    # test runs leave many transactional ids behind: forget them after a day (default 7 days),
    # looking every 10 minutes (default 1 h)
    "transactional.id.expiration.ms": str(24 * 3600 * 1000),
    "transaction.remove.expired.transaction.cleanup.interval.ms": str(10 * 60 * 1000),
    # a killed broker is fenced by the controller (its partitions get new leaders and shrink
    # their ISR) after 3 s without a heartbeat instead of 9 s
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}
# what Tocsin ran with before (Kafka's defaults but no initial rebalance delay)
LEGACY_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}


def replication_for(brokers: int) -> tuple[int, int]:
    """Replication factor and min.insync.replicas for a cluster of `brokers` nodes: three
    copies at most, and two of them in sync once there are three (so one may be down)."""
    rf = max(1, min(3, brokers))
    return rf, (2 if rf >= 3 else 1)


def cache_dir() -> Path:
    return Path(os.environ.get("TOCSIN_CACHE", Path.home() / ".cache" / "tocsin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def provision(version: str = KAFKA_VERSION, *, quiet: bool = False) -> Path:
    """Return the folder of broker jars, downloading them through Maven on first use."""
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    done = home / ".complete"
    if done.exists() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = toolchain.require("mvn")
    toolchain.require("java")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(f"tocsin: fetching Apache Kafka {version} from Maven Central into {libs} ...",
              flush=True)
    cmd = [mvn, "-B", "-q", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        raise ServiceError(
            f"Maven could not assemble Kafka {version} (exit {proc.returncode}):\n"
            f"{(proc.stdout + proc.stderr)[-3000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    done.write_text(version)
    return libs


class ServiceProcess:
    """What every service started here shares: its process, its log, and a clean stop.
    Subclasses have `proc` (a Popen or None) and `log_path`."""

    proc: subprocess.Popen | None
    log_path: Path

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        stop_pid(self.proc.pid, timeout)
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


@dataclass
class KafkaBroker(ServiceProcess):
    """One KRaft broker+controller on 127.0.0.1; alone (replication factor 1 everywhere) or
    one node of a :class:`~tocsin.services.kafka_cluster.KafkaCluster` (`node_id`, `voters`,
    `cluster_size`, `cluster_id` set by it)."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1g"
    version: str = KAFKA_VERSION
    extra: dict[str, str] = field(default_factory=dict)
    node_id: int = 1
    voters: str | None = None  # controller.quorum.voters; default: this node alone
    cluster_size: int = 1  # sets the replication defaults (replication_for)
    cluster_id: str | None = None  # formatted with this id (a cluster shares one)
    failover: bool = True  # FAILOVER_SETTINGS; False: LEGACY_SETTINGS (benchmarks only)
    jvm_flags: tuple[str, ...] = ()  # added to the JVM command line
    # detach: outlive this process (`tocsin services up`); otherwise the broker gets SIGTERM
    # when its parent dies, so a killed test run or benchmark leaves no broker behind
    detach: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def _properties(self) -> str:
        rf, min_isr = (str(x) for x in replication_for(self.cluster_size))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters
            or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "auto.create.topics.enable": "true",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        props.update(FAILOVER_SETTINGS if self.failover else LEGACY_SETTINGS)
        props.update(self.extra)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, libs: Path, main: str, *args: str, **popen) -> subprocess.Popen:
        java = toolchain.require("java")
        log4j = self.data_dir / "log4j2.properties"
        cmd = [java, f"-Xms{_min_heap(self.heap)}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
               *self.jvm_flags, "-cp", f"{libs}/*", main, *args]
        return subprocess.Popen(cmd, **popen)

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        self.launch()
        self.wait_ready(timeout)
        return self

    def format(self) -> Path:
        """Write the properties and format the storage on first use; returns the
        properties file."""
        libs = provision(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(self._properties())
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        if not (self.data_dir / "logs" / "meta.properties").exists():
            fmt = self._java(libs, "kafka.tools.StorageTool", "format", "-t",
                             self.cluster_id or _cluster_id(), "-c", str(props), "-g",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out, _ = fmt.communicate(timeout=120)
            if fmt.returncode != 0:
                raise ServiceError(f"Kafka storage format failed:\n{out[-3000:]}")
        return props

    def launch(self) -> None:
        """Start the JVM without waiting for it (a cluster launches all its nodes first:
        none is ready before a quorum is). Call it from the thread that outlives the broker:
        the kernel's parent-death signal follows the thread that forked."""
        props = self.format()
        libs = provision(self.version)
        for p in (self.port, self.controller_port):
            if _port_open(p):
                raise ServiceError(f"port {p} on 127.0.0.1 is already in use; "
                                   "choose another with --kafka-port/--controller-port")
        log = open(self.log_path, "ab")
        self._log_offset = log.tell()  # the log is appended to: only this start's lines count
        if self.detach:
            opts = {"start_new_session": True}
        else:
            opts = {"preexec_fn": _die_with_parent}
        self.proc = self._java(libs, "kafka.Kafka", str(props), stdout=log,
                               stderr=subprocess.STDOUT, **opts)
        log.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        self._wait_ready(timeout, getattr(self, "_log_offset", 0))

    def _wait_ready(self, timeout: float, offset: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(f"Kafka exited with code {self.proc.returncode} before it "
                                   f"was ready; last log lines:\n{self.tail_log()}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if READY_MARKER.encode() in f.read():
                    return
            time.sleep(0.2)
        self.stop()
        raise ServiceError(f"Kafka was not ready within {timeout:.0f}s on {self.bootstrap}; "
                           f"last log lines:\n{self.tail_log()}")



def stop_pid(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM a process (Kafka shuts down cleanly on it), SIGKILL after `timeout`."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the parent exits."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux/glibc: the broker is stopped by stop() or by hand


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _min_heap(heap: str) -> str:
    """-Xms256m, or the whole heap when that is smaller (a cluster's nodes get 384m)."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    try:
        mb = float(heap[:-1]) * units[heap[-1].lower()]
    except (KeyError, ValueError, IndexError):
        return "256m"
    return heap if mb < 256 else "256m"


def _cluster_id() -> str:
    import base64

    while True:  # as Kafka's Uuid.randomUuid: none that starts with "-" (read as an option)
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
