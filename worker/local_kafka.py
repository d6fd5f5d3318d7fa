"""A single-node Apache Kafka (KRaft) for laptops and CI, built from Maven Central jars.

No Docker and no download outside the package registries: Maven resolves the
pinned `kafka_2.13` artifact and its runtime dependencies into a cache folder
once; later starts reuse it. `start()` is idempotent, `stop()` is clean.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

KAFKA_VERSION = "4.1.1"
# The jars ship log4j2 without an SLF4J binding; this one makes the broker log.
LOG4J_VERSION = "2.24.3"

CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "web2app-worker"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2_CONFIG = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


class LocalKafkaError(RuntimeError):
    """Something the local broker needs is missing or it did not come up."""


@dataclass(frozen=True)
class LocalKafka:
    """One broker: its port, the controller's port and the folder holding its data and logs."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1g"
    # Listeners besides PLAINTEXT, named by their security protocol (e.g. {"SASL_SSL": 9095}), the
    # broker properties they need (TLS keystores, SASL mechanisms, an authorizer), and arguments for
    # formatting the storage (e.g. `--add-scram` users, which KRaft takes only there or from an admin).
    extra_listeners: Mapping[str, int] = field(default_factory=dict)
    extra_properties: Mapping[str, str] = field(default_factory=dict)
    format_args: tuple[str, ...] = ()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return its bootstrap address once it serves."""
        if self.running_pid() is not None:
            wait_until_serving(self.bootstrap, timeout)
            return self.bootstrap
        if _port_open(self.port):
            raise LocalKafkaError(f"port {self.port} is taken by another process; choose another with --port")
        classpath = resolve_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        properties = self._write_config()
        data_dir = self.home / "data"
        if not (data_dir / "meta.properties").exists():
            _run_java(classpath, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(properties),
                      *self.format_args)
        log4j = self.home / "log4j2.properties"
        log4j.write_text(LOG4J2_CONFIG.format(log=self.log_file, level="INFO"))
        with open(self.home / "broker.out", "ab") as out:
            process = subprocess.Popen(
                [_java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                 f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath, "kafka.Kafka", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it cleanly
            )
        self.pid_file.write_text(str(process.pid))
        try:
            wait_until_serving(self.bootstrap, timeout, process)
        except LocalKafkaError:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def _write_config(self) -> Path:
        path = self.home / "server.properties"
        listeners = {"PLAINTEXT": self.port, **self.extra_listeners}
        addresses = ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items())
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{addresses},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": addresses,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(f"{name}:{name}" for name in listeners) + ",CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # Without this every first consumer-group join waits 3 s.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            **self.extra_properties,
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path


def resolve_jars() -> str:
    """Return the broker's classpath, resolving the jars with Maven on first use."""
    libs = CACHE_ROOT / f"kafka-{KAFKA_VERSION}" / "libs"
    done = libs / ".complete"
    if not done.exists():
        _java()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "Maven (mvn) is needed once to fetch the Kafka jars from Maven Central: "
                "install it (Debian: apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS"
            )
        work = libs.parent
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
        print(f"Resolving Apache Kafka {KAFKA_VERSION} from Maven Central (first run only)...", file=sys.stderr)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise LocalKafkaError(f"Maven could not resolve the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        done.touch()
    return os.pathsep.join(str(jar) for jar in sorted(libs.glob("*.jar")))


def wait_until_serving(bootstrap: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Block until the broker answers a produce and a fetch, or raise."""
    deadline = time.monotonic() + timeout
    host, port = bootstrap.rsplit(":", 1)
    while not _port_open(int(port), host):
        if process is not None and process.poll() is not None:
            raise LocalKafkaError(f"the broker exited with code {process.returncode}; see its log")
        if time.monotonic() > deadline:
            raise LocalKafkaError(f"the broker did not open {bootstrap} within {timeout:.0f} s")
        time.sleep(0.2)
    asyncio.run(_produce_and_fetch(bootstrap, deadline))


async def _produce_and_fetch(bootstrap: str, deadline: float) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "__local_kafka_probe"
    marker = uuid.uuid4().hex.encode()
    while True:
        try:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            await producer.start()
            try:
                sent = await producer.send_and_wait(topic, marker, partition=0)
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                consumer.seek(tp, sent.offset)
                record = await consumer.getone()
                if record.value == marker:
                    return
            finally:
                await consumer.stop()
        except Exception as exc:  # the broker is still electing itself; try again until the deadline
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"the broker at {bootstrap} does not serve produce and fetch: {exc}") from exc
            await asyncio.sleep(0.5)


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError("Java 17 or newer is needed to run the local Kafka (Debian: apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        raise LocalKafkaError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; found: {out.splitlines()[0] if out else 'unknown'}")
    return java


def _run_java(classpath: str, main: str, *args: str) -> None:
    result = subprocess.run([_java(), "-cp", classpath, main, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalKafkaError(f"{main} failed: {result.stdout}{result.stderr}")


def _cluster_id() -> str:
    # Like Kafka's Uuid.randomUuid: an id starting with "-" would be read as an option by StorageTool.
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return cluster_id


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
