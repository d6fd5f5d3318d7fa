import pytest

from worker.tiktok.events import STANDARD_WEB_EVENTS, event_name_problem, is_valid_event_name


def test_the_2025_standard_web_events_and_the_legacy_names_are_valid():
    assert len(STANDARD_WEB_EVENTS) == 18
    for name in [*STANDARD_WEB_EVENTS, "CompletePayment", "SubmitForm"]:
        assert is_valid_event_name(name), name
        assert event_name_problem(name) is None


@pytest.mark.parametrize("name", ["trial_started", "Paywall-Shown", "a", "A" + "b9_-" * 12 + "c"])
def test_well_formed_custom_names_are_valid(name):
    assert len(name) <= 50
    assert is_valid_event_name(name)


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"),
    ("A" * 51, "at most 50 characters"),
    ("1st_purchase", "start with a letter"),
    ("_trial", "start with a letter"),
    ("trial started", "not ' '"),
    ("trial.started", "not '.'"),
    ("Pürchase", "not 'ü'"),
    ("purchase", "case-sensitive"),
    ("STARTTRIAL", "'StartTrial'"),
    (None, "must be a string"),
    (42, "must be a string"),
])
def test_invalid_names_come_with_a_reason(name, reason):
    assert not is_valid_event_name(name)
    assert reason in event_name_problem(name)
