"""Topic names of the contract and of the worker's internal hand-offs, and their creation.

Input topics must exist with their partition counts before the agents subscribe
(a Faust agent ignores a topic that appears later), so the worker creates every
topic it uses before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker import kafka_security
from worker.settings import Settings


@dataclass(frozen=True)
class TopicNames:
    clicks: str
    app_events: str
    integrations: str
    delivery_results: str
    dead_letter: str
    by_ttclid: str  # internal: clicks and app events re-keyed by ttclid, so both meet in one partition
    outbox: str  # internal: events ready for TikTok, keyed by pixel_id so one replica owns a pixel
    by_campaign: str  # internal: delivery results keyed by their campaign row, for the analytics table
    delivery_retry: str  # internal: outbox events parked until they are due again, keyed by pixel_id

    @classmethod
    def of(cls, settings: Settings) -> "TopicNames":
        t = settings.topic
        return cls(t("clicks"), t("app-events"), t("integrations"), t("delivery-results"),
                   t("dead-letter"), t("by-ttclid"), t("outbox"), t("by-campaign"),
                   t("delivery-retry"))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_of(settings: Settings, table: str) -> str:
    """The changelog topic Faust names for one of the worker's tables."""
    return f"{settings.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    names = TopicNames.of(settings)
    n = settings.topic_partitions
    compacted = {"cleanup.policy": "compact"}
    return [
        # The tables' changelogs too: left to Faust, a replica whose metadata does not show the new topic
        # yet counts it as having no partitions, and every write to that table fails until it refreshes.
        TopicSpec(changelog_of(settings, "ttclids"), n, compacted),
        # The campaign rows (`worker/analytics`), named as when they were a Faust table's changelog.
        TopicSpec(changelog_of(settings, "campaign_stats"), n, compacted),
        TopicSpec(names.clicks, n),
        TopicSpec(names.app_events, n),
        TopicSpec(names.integrations, 1, compacted),
        TopicSpec(names.delivery_results, n),
        TopicSpec(names.dead_letter, n),
        TopicSpec(names.by_ttclid, n),
        TopicSpec(names.outbox, n),
        TopicSpec(names.by_campaign, n),
        TopicSpec(names.delivery_retry, n),
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create the worker's topics that do not exist yet; existing ones are left as they are.

    Connects first, so a wrong password, an untrusted certificate or no broker ends here with the reason."""
    await kafka_security.check_reachable(settings)
    async with kafka_security.admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs(settings) if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing])
            except TopicAlreadyExistsError:  # another replica created them first
                pass


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    async with kafka_security.admin_client(settings) as admin:
        [description] = await admin.describe_topics([topic])
    return sorted(p["partition"] for p in description["partitions"])


async def records_to_end(settings: Settings, topic: str,
                         numbers: Iterable[int] | None = None) -> AsyncIterator[ConsumerRecord]:
    """Every record of a topic (of the partitions `numbers`, else of all), from its start to its end as
    it is when the call begins."""
    partitions = [TopicPartition(topic, p) for p in (await partitions_of(settings, topic) if numbers is None
                                                     else numbers)]
    if not partitions:
        return
    consumer = AIOKafkaConsumer(**kafka_security.client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for message in messages:
                    yield message
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
