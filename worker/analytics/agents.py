"""Campaign analytics at the Kafka edge: delivery results (re-keyed by their campaign row where they
are written) counted per app, UTC day, campaign, ad set and ad, in rows kept on a compacted topic that
every replica follows whole.

Counting is a consumer group of its own (`worker/consumer_group.py`), not a Faust agent over a table:
a batch of results becomes one write per row it changed, and no result pays for Faust's consumer loop.
At every assignment a replica reads the rows of its partitions back from the rows topic (the row and
the partition of its results share their number), with what each row remembers of its recent events
(`stats`), so a result read again replaces itself instead of adding.

Every replica answers for every campaign from the rows topic rather than routing a request to the
row's owner: a page view needs all rows at once, and the answer does not depend on which replica
owns which partition at the moment.
"""

from __future__ import annotations

import logging

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from worker.analytics.stats import add_result, empty_row, without_recent
from worker.app import app, settings, writes
from worker.consumer_group import Batch, BatchStage
from worker.follow import TopicFollower
from worker.produce import Sends
from worker.topics import TopicNames, changelog_of, records_to_end

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)
# The name of the Faust table the rows were kept in before: a deployment keeps its counts.
ROWS_TOPIC = changelog_of(settings, "campaign_stats")


class CountResults(BatchStage):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, "analytics", [topics.by_campaign], **kwargs)
        self.rows: dict[int, dict[bytes, dict]] = {}  # partition -> row key -> row, for the partitions assigned

    async def take_over(self, assigned: set[TopicPartition]) -> None:
        await super().take_over(assigned)
        partitions = {tp.partition for tp in assigned}
        # A partition kept through the rebalance was no one else's meanwhile: its rows are current.
        self.rows = {p: rows for p, rows in self.rows.items() if p in partitions}
        fresh = sorted(partitions - set(self.rows))
        for p in fresh:
            self.rows[p] = {}
        async for record in records_to_end(settings, ROWS_TOPIC, fresh):
            if record.value is None:
                self.rows[record.partition].pop(record.key, None)
            else:
                self.rows[record.partition][record.key] = orjson.loads(record.value)

    async def process(self, batch: Batch) -> None:
        sends = Sends(writes)
        for tp, records in batch.items():
            rows = self.rows[tp.partition]
            changed = set()
            for record in records:
                try:
                    row = rows.get(record.key) or empty_row(record.key.decode())
                    rows[record.key] = add_result(row, orjson.loads(record.value))
                    changed.add(record.key)
                except Exception as exc:  # one result this code cannot count costs that result alone
                    log.exception("unexpected error counting %s[%s]@%s", record.topic, record.partition, record.offset)
                    sends.send_dead_letter(topics.dead_letter, record, "internal_error",
                                           f"{type(exc).__name__}: {exc}")
            for key in changed:
                sends.send(ROWS_TOPIC, key, orjson.dumps(rows[key]), tp.partition)
        await sends.flush()


class CampaignRows(TopicFollower):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, ROWS_TOPIC, **kwargs)
        self.rows: dict[bytes, dict] = {}

    def apply(self, message: ConsumerRecord) -> None:
        if message.value is None:
            self.rows.pop(message.key, None)
        else:  # what the row remembers of recent events is for counting, not for showing
            self.rows[message.key] = without_recent(orjson.loads(message.value))


count_results = app.service(CountResults())
campaign_rows = app.service(CampaignRows())
