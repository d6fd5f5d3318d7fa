"""The worker creates every topic it uses before it starts, its tables' changelogs included."""

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support import Kafka
from worker.settings import Settings
from worker.topics import changelog_of, ensure_topics


def test_the_changelog_is_named_as_faust_names_it():
    from worker.app import settings  # the composition root first: it registers every stage
    from worker.attribution.agents import ttclids

    assert changelog_of(settings, "ttclids") == ttclids.changelog_topic.get_topic_name()


async def test_the_tables_changelogs_exist_compacted_before_the_worker_starts(kafka: Kafka):
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PREFIX": kafka.prefix,
                                  "TOPIC_PARTITIONS": "3"})
    await ensure_topics(settings)
    changelogs = [changelog_of(settings, "ttclids"), changelog_of(settings, "campaign_stats")]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(changelogs)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in changelogs])
    finally:
        await admin.close()
    assert {d["topic"]: len(d["partitions"]) for d in described} == {t: 3 for t in changelogs}
    policies = {resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
                for response in configs for resource in response.resources}
    assert policies == {t: "compact" for t in changelogs}
