"""Landing URLs as TikTok fills them in: names with spaces, `&`, `#`, `%`, `=`, emoji and non-Latin
scripts, percent-encoded or not, and macros TikTok left unreplaced."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.ingest.records import InvalidRecord, parse_click, url_attribution

NAMES = ("campaign_name", "adset_name", "ad_name")
# Names as marketers type them: any script, emoji, punctuation.
name_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
ttclids = st.from_regex(r"E\.C\.P\.[A-Za-z0-9_-]{8,40}", fullmatch=True)


def ad_url(names: dict[str, str], ttclid: str, encode=lambda value: value) -> str:
    query = "&".join(f"{name}={encode(value)}" for name, value in names.items())
    return f"https://yourapp.example/landing?{query}&ttclid={encode(ttclid)}"


def as_a_browser_sends_it(url: str) -> str:
    """What `location.href` holds after the browser normalises a typed URL: spaces and non-ASCII encoded."""
    return quote(url, safe="".join(chr(c) for c in range(0x21, 0x7f)))


def substitutable(name: str) -> bool:
    """Names that read back unambiguously when TikTok substitutes them unencoded: no `&word=`
    (a parameter's start), no `%XX` (an escape), no `+` (a space), not a macro, not blank."""
    return not (re.search(r"&[\w.\-\[\]]+=|%[0-9A-Fa-f]{2}|\+", name, re.ASCII)
                or re.fullmatch(r"__[A-Z0-9_]+__", name.strip()) or not name.strip())


@given(st.fixed_dictionaries({name: name_text for name in NAMES}), ttclids)
def test_percent_encoded_names_read_back_exactly(names, ttclid):
    names = {k: v for k, v in names.items() if v.strip() and not re.fullmatch(r"__[A-Z0-9_]+__", v.strip())}
    for encode in (quote_plus, lambda v: quote(v, safe="")):
        assert url_attribution(ad_url(names, ttclid, encode)) == {**names, "ttclid": ttclid}


@given(st.fixed_dictionaries({name: name_text.filter(substitutable) for name in NAMES}), ttclids)
def test_names_substituted_unencoded_read_back_exactly(names, ttclid):
    url = ad_url(names, ttclid)
    assert url_attribution(url) == {**names, "ttclid": ttclid}
    assert url_attribution(as_a_browser_sends_it(url)) == {**names, "ttclid": ttclid}


@pytest.mark.parametrize("url, expected", [
    ("https://a.example/?campaign_name=Spring Sale #1 🚀&adset_name=Tom & Jerry&ad_name=50% off&ttclid=E.C.P.a",
     {"campaign_name": "Spring Sale #1 🚀", "adset_name": "Tom & Jerry", "ad_name": "50% off", "ttclid": "E.C.P.a"}),
    ("https://a.example/?campaign_name=%E6%9D%B1%E4%BA%AC%20%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0&ttclid=E.C.P.b",
     {"campaign_name": "東京 Москва", "ttclid": "E.C.P.b"}),
    ("https://a.example/?campaign_name=A%26B%23C%25&adset_name=x=y&ttclid=E.C.P.c",
     {"campaign_name": "A&B#C%", "adset_name": "x=y", "ttclid": "E.C.P.c"}),
    ("https://a.example/?campaign_name=Sale&ttclid=E.C.P.d#pricing", {"campaign_name": "Sale", "ttclid": "E.C.P.d"}),
    ("https://a.example/#/start?campaign_name=Sale&ttclid=E.C.P.e", {"campaign_name": "Sale", "ttclid": "E.C.P.e"}),
    ("https://a.example/?campaign_name=%FF%FEbad&ttclid=E.C.P.f", {"campaign_name": "\ufffd\ufffdbad", "ttclid": "E.C.P.f"}),
])
def test_what_tiktok_substitutes_reads_as_meant(url, expected):
    assert url_attribution(url) == expected


def test_a_macro_tiktok_left_unreplaced_is_absent():
    url = ("https://a.example/?campaign_name=__CAMPAIGN_NAME__&adset_name=__AID_NAME__&ad_name=Video-3"
           "&ttclid=__CLICKID__&ttclid=E.C.P.auto")
    assert url_attribution(url) == {"ad_name": "Video-3", "ttclid": "E.C.P.auto"}
    assert url_attribution("https://a.example/?ttclid=__CLICKID__&campaign_name=%5F%5FCAMPAIGN_NAME%5F%5F") == {}


def test_a_click_whose_only_ttclid_is_a_macro_has_none():
    click = {"app_id": "a", "occurred_at": "2026-11-24T10:00:00Z", "url": "https://a.example/?ttclid=__CLICKID__"}
    with pytest.raises(InvalidRecord) as caught:
        parse_click(orjson.dumps(click))
    assert caught.value.reason == "missing_ttclid"
    click |= {"url": "https://a.example/?ttclid=E.C.P.x&campaign_name=Spring", "campaign_name": "__CAMPAIGN_NAME__"}
    assert parse_click(orjson.dumps(click))["campaign_name"] == "Spring"
