"""Log format: one JSON object per line for production, plain text for local runs."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson

# `faust worker -l` words, and the names logging knows them by.
LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}
# Passed as `extra=` where a line concerns one app, pixel or event.
CONTEXT = ("app_id", "pixel_id", "event_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in CONTEXT if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(log_format: str, log_level: str) -> dict[str, Any]:
    formatter = ({"()": JsonFormatter} if log_format == "json"
                 else {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": LEVELS.get(log_level, log_level.upper()), "handlers": ["default"]},
    }
