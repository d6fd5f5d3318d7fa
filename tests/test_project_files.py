"""The files a new user reads first say what the code does."""

from pathlib import Path

import yaml

from worker.settings import Settings, markdown_table
from worker.topics import TopicNames

REPO = Path(__file__).resolve().parents[1]


def test_readme_lists_every_setting_with_its_default():
    assert markdown_table() in (REPO / "README.md").read_text()


def test_ci_runs_the_readmes_test_command():
    assert "scripts/test" in (REPO / ".ci" / "run").read_text()
    assert "scripts/test" in (REPO / "README.md").read_text()


def test_docker_compose_runs_kafka_and_a_scalable_worker_with_the_contracts_environment():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    kafka, worker = compose["services"]["kafka"], compose["services"]["worker"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ports" not in worker, "a fixed host port would stop --scale"
    env = worker["environment"]
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TOPIC_PREFIX", "TIKTOK_API_URL", "TIKTOK_DRY_RUN"):
        assert name in env
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert TopicNames.of(settings).clicks == "web2app.clicks"
