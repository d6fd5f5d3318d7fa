"""Integrations at the edge: every replica follows the whole compacted integrations topic.

Read from the start before the join runs, then followed for as long as the worker
lives, so a new record or a tombstone takes effect without a restart. (A Faust
GlobalTable would be the obvious tool, but faust-streaming 0.15.3 neither assigns
one whose changelog is a topic of our own nor applies updates after recovery.)
"""

from __future__ import annotations

import logging

import orjson
from aiokafka import ConsumerRecord

from worker.app import app, settings, survives, writes
from worker.follow import TopicFollower
from worker.dead_letters import dead_letter
from worker.integrations.config import Integration, InvalidIntegration, parse_integration
from worker.integrations.tokens import UndecryptableToken, decrypt_token, token_keys
from worker.produce import Sends
from worker.results import utc_now_iso
from worker.topics import TopicNames

log = logging.getLogger(__name__)


class IntegrationCatalog(TopicFollower):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, TopicNames.of(settings).integrations, **kwargs)
        self.integrations: dict[str, Integration | None] = {}  # None: present but unusable
        self.keys = token_keys(settings)
        # app_id -> the dead letter of its record, whose token no key of ours opens, until it is written.
        self.undecryptable: dict[str, dict] = {}

    def get(self, app_id: str) -> tuple[Integration | None, str | None]:
        """The app's integration, or None with the reason there is none usable."""
        if app_id not in self.integrations:
            return None, "no_integration"
        integration = self.integrations[app_id]
        return (integration, None) if integration is not None else (None, "integration_invalid")

    def apply(self, message: ConsumerRecord) -> None:
        app_id = message.key.decode(errors="replace")
        self.undecryptable.pop(app_id, None)
        if message.value is None:
            self.integrations.pop(app_id, None)
            return
        try:
            self.integrations[app_id] = parse_integration(decrypt_token(orjson.loads(message.value), self.keys))
        except (orjson.JSONDecodeError, InvalidIntegration) as exc:
            log.error("integration of app %s is unusable, its events are skipped: %s", app_id, exc,
                      extra={"app_id": app_id})
            self.integrations[app_id] = None
            if isinstance(exc, UndecryptableToken):
                # The record itself is left out: it holds the token, encrypted or not.
                self.undecryptable[app_id] = dead_letter(
                    "integration_undecryptable", str(exc), message.topic, message.partition, message.offset,
                    message.key, None, utc_now_iso())


catalog = app.service(IntegrationCatalog())


@app.timer(interval=1.0)
@survives
async def report_undecryptable() -> None:
    """Every replica reads every integration, and logs what it cannot decrypt; only the group's
    leader writes the dead letters, so an undecryptable record gets one, not one per replica."""
    if not catalog.undecryptable or not app.consumer.assignment():
        return  # until the first assignment no replica knows whether it leads
    pending, catalog.undecryptable = catalog.undecryptable, {}
    if app.is_leader():
        sends = Sends(writes)
        for app_id, entry in pending.items():
            sends.send_json(TopicNames.of(settings).dead_letter, app_id, entry)
        await sends.flush()
