"""The test environment itself: it never reaches the real TikTok, and on CI a missing tool fails."""

from __future__ import annotations

import pytest

from tests.support import NO_TIKTOK, WorkerProcess, required_tool
from worker.settings import TIKTOK_EVENTS_URL


@pytest.mark.parametrize("url", [TIKTOK_EVENTS_URL, "http://10.0.0.5/open_api/v1.3/event/track/",
                                 "http://127.0.0.1.example.com/", None])
def test_a_test_worker_refuses_any_tiktok_url_but_a_loopback_one(url, tmp_path, monkeypatch):
    monkeypatch.delenv("TIKTOK_API_URL", raising=False)
    env = {} if url is None else {"TIKTOK_API_URL": url}
    worker = WorkerProcess(env, tmp_path / "worker.log")
    with pytest.raises(ValueError, match="loopback"):
        worker.start()
    assert worker.process is None


def test_every_test_worker_gets_a_loopback_tiktok_url(worker_env):
    assert worker_env["TIKTOK_API_URL"] == NO_TIKTOK


def test_a_missing_tool_skips_a_test_locally_and_fails_it_on_ci(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        required_tool("chromium", "for the page test")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        required_tool("chromium", "for the page test")
