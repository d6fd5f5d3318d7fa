"""Campaign analytics at the Faust edge: delivery results counted per app, UTC day, campaign,
ad set and ad in a Faust table, and the table's changelog followed whole by every replica.

Every replica answers for every campaign from the compacted changelog rather than routing a
request to the key's owner: a page view needs all rows at once, and the answer does not depend
on which replica owns which partition at the moment.
"""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord

from worker.analytics.stats import add_result, empty_row, without_recent
from worker.app import app, settings
from worker.follow import TopicFollower
from worker.topics import TopicNames

topics = TopicNames.of(settings)
by_campaign = app.topic(topics.by_campaign, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")
campaign_stats = app.Table("campaign_stats", partitions=settings.topic_partitions, key_type=bytes,
                           value_type=bytes)


@app.agent(by_campaign)
async def count_results(stream) -> None:
    async for key, raw in stream.items():
        row = campaign_stats.get(key)
        row = orjson.loads(row) if row is not None else empty_row(key.decode())
        campaign_stats[key] = orjson.dumps(add_result(row, orjson.loads(raw)))


class CampaignRows(TopicFollower):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, campaign_stats.changelog_topic.get_topic_name(), **kwargs)
        self.rows: dict[bytes, dict] = {}

    def apply(self, message: ConsumerRecord) -> None:
        if message.value is None:
            self.rows.pop(message.key, None)
        else:  # what the row remembers of recent events is for counting, not for showing
            self.rows[message.key] = without_recent(orjson.loads(message.value))


campaign_rows = app.service(CampaignRows())
