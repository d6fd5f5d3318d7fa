"""Builders of realistic input records, shared by the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tests.kafka_broker import REPO


def iso(ts: float | None = None) -> str:
    moment = datetime.now(timezone.utc) if ts is None else datetime.fromtimestamp(ts, timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def click(ttclid: str, app_id: str = "app1", campaign: str = "Spring", adset: str = "US-25", ad: str = "Video-3",
          occurred_at: str | None = None, **extra) -> dict:
    url = f"https://app.example/?campaign_name={campaign}&adset_name={adset}&ad_name={ad}&ttclid={ttclid}"
    return {"app_id": app_id, "url": url, "occurred_at": occurred_at or iso(), "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH",
            "ip": "203.0.113.5", "user_agent": "Mozilla/5.0 (iPhone)", "referrer": "https://www.tiktok.com/",
            "locale": "en-US", **extra}


def app_event(event_id: str, ttclid: str | None, name: str = "trial_started", app_id: str = "app1",
              occurred_at: str | None = None, **extra) -> dict:
    event = {"event_id": event_id, "app_id": app_id, "name": name, "occurred_at": occurred_at or iso(),
             "user": {"id": f"user-{event_id}", "email": f" {event_id.upper()}@Example.com "},
             "value": 9.99, "currency": "USD", "product_id": "pro_monthly", **extra}
    if ttclid is not None:
        event["ttclid"] = ttclid
    return event


def apply_integrations(env: dict[str, str], integrations: list[dict], tmp: Path) -> str:
    """Publish integrations with the real CLI, as an operator would."""
    path = tmp / f"integrations-{len(list(tmp.glob('integrations-*')))}.yaml"
    path.write_text(yaml.safe_dump(integrations))
    done = subprocess.run([sys.executable, "-m", "worker", "integrations", "apply", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
