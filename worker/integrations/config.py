"""Integration config, pure: parse and validate an integration, and decide what one app event becomes.

An integration says, per app, which pixel and token to use, whether it is on, and which app
events go to TikTok under which name; names it leaves out follow the default event table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from worker.ingest.records import load_schema
from worker.tiktok.events import event_name_problem

# app event -> (TikTok event, enabled by default), as in the contract.
DEFAULT_EVENTS: dict[str, tuple[str, bool]] = {
    "user_created": ("CompleteRegistration", True),
    "paywall_shown": ("ViewContent", False),
    "paywall_checkout_initiated": ("InitiateCheckout", True),
    "trial_started": ("StartTrial", True),
    "intro_started": ("Subscribe", True),
    "promo_started": ("Subscribe", True),
    "subscription_started": ("Subscribe", True),
    "trial_converted": ("Subscribe", True),
    "intro_converted": ("Subscribe", True),
    "promo_converted": ("Subscribe", True),
    "subscription_renewed": ("Purchase", True),
    "intro_renewed": ("Purchase", True),
    "promo_renewed": ("Purchase", True),
    "non_renewing_purchase": ("Purchase", True),
}

_schema_validator = jsonschema.Draft202012Validator(load_schema("integration"))


class InvalidIntegration(ValueError):
    """An integration that must not be used; the message never holds the access token."""


@dataclass(frozen=True)
class Integration:
    app_id: str
    pixel_id: str
    access_token: str = field(repr=False)
    enabled: bool = True
    test_event_code: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    limited_data_use: bool = False

    @property
    def masked_token(self) -> str:
        return mask(self.access_token)

    def tiktok_event(self, app_event: str) -> tuple[str | None, str | None]:
        """(TikTok name, None) when the event is sent, else (None, the skip reason)."""
        if not self.enabled:
            return None, "integration_disabled"
        default_name, default_enabled = DEFAULT_EVENTS.get(app_event, (None, False))
        row = self.events.get(app_event, {})
        name = row.get("name", default_name)
        # Listing an event with a name is asking for it to be sent.
        enabled = row.get("enabled", default_enabled or "name" in row)
        if not enabled or name is None:
            return None, "event_disabled"
        return name, None


def mask(token: str) -> str:
    return f"…{token[-4:]}" if len(token) >= 16 else "…"


def parse_integration(value: Any) -> Integration:
    """Validate an integration v1 object (schema and TikTok event names) and return it."""
    errors = sorted(_schema_validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        # jsonschema's own message may quote the token's value; name the field instead.
        where = ".".join(str(p) for p in errors[0].absolute_path) or "the record"
        raise InvalidIntegration(f"integration v1: {where}: {_safe_message(errors[0])}")
    for app_event, row in value.get("events", {}).items():
        if "name" in row and (problem := event_name_problem(row["name"])):
            raise InvalidIntegration(f"{value['app_id']}: events.{app_event}.name: {problem}")
        if row.get("enabled") and "name" not in row and app_event not in DEFAULT_EVENTS:
            raise InvalidIntegration(
                f"{value['app_id']}: events.{app_event} is enabled but has no TikTok name (not in the default table)")
    return Integration(
        app_id=value["app_id"], pixel_id=value["pixel_id"], access_token=value["access_token"],
        enabled=value.get("enabled", True), test_event_code=value.get("test_event_code"),
        events=value.get("events", {}), limited_data_use=value.get("limited_data_use", False))


def _safe_message(error: jsonschema.ValidationError) -> str:
    if error.validator in ("type", "minLength", "enum", "pattern"):
        return f"must be {error.validator} {json.dumps(error.validator_value)}"
    return error.message


def public_view(integration: Integration) -> dict[str, Any]:
    """What `integrations list` shows: everything but the token, which is masked."""
    return {"app_id": integration.app_id, "pixel_id": integration.pixel_id,
            "access_token": integration.masked_token, "enabled": integration.enabled,
            "test_event_code": integration.test_event_code, "limited_data_use": integration.limited_data_use,
            "events": integration.events}


def outbox_record(joined: dict[str, Any], integration: Integration) -> tuple[dict[str, Any], str | None]:
    """The record for the outbox and None, or the event with what is known and the skip reason."""
    record = {**joined, "pixel_id": integration.pixel_id, "test_event_code": integration.test_event_code,
              "limited_data_use": integration.limited_data_use}
    tiktok_event, skip_reason = integration.tiktok_event(joined["name"])
    if skip_reason:
        return record, skip_reason
    record["tiktok_event"] = tiktok_event
    return record, None
