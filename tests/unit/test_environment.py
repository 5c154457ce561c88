"""Proxies and .netrc credentials from the environment: looked up once, per host only where
the answer can differ between hosts, and the same answer requests itself would give."""

from __future__ import annotations

from pathlib import Path

import pytest
from requests.utils import get_environ_proxies, get_netrc_auth, select_proxy

from urlfleet.config import FetchConfig
from urlfleet.fetching import environment as lookups
from urlfleet.fetching.environment import Environment

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No proxy variables, no NETRC, and a home without .netrc; returns that home."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def count_look_ups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        asked.append(url)
        return get_environ_proxies(url, no_proxy)

    monkeypatch.setattr(lookups, "get_environ_proxies", counted)
    return asked


def test_nothing_host_specific_means_one_look_up_per_scheme(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = count_look_ups(monkeypatch)
    environment = Environment(FetchConfig())
    answers = [
        environment.settings(f"{scheme}://h{i}.test/page")
        for i in range(5000)
        for scheme in ("http", "https")
    ]
    assert len(asked) == 2  # one http, one https, for 10,000 hosts
    assert all(answer == answers[0] for answer in answers)
    assert answers[0].proxies == {} and answers[0].auth is None and answers[0].gated


def test_scheme_keyed_proxies_in_the_config_are_the_same_for_every_host(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = count_look_ups(monkeypatch)
    proxies = {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
    environment = Environment(FetchConfig(proxies=proxies))
    for i in range(300):
        assert environment.settings(f"http://h{i}.test/").proxies == proxies
    assert len(asked) == 1


def test_a_host_specific_proxy_in_the_config_is_asked_per_host(bare_environment: Path) -> None:
    proxies = {"http://h5.test": "http://127.0.0.1:3128"}
    environment = Environment(FetchConfig(proxies=proxies))
    assert environment.settings("http://h5.test/").proxies == proxies
    assert environment.settings("http://h6.test/").gated
    assert select_proxy("http://h5.test/x", environment.settings("http://h5.test/").proxies)
    assert not select_proxy("http://h6.test/x", environment.settings("http://h6.test/").proxies)


def test_proxy_variables_and_no_proxy_are_answered_per_host(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "direct.test")
    environment = Environment(FetchConfig())
    for host in ("direct.test", "proxied.test"):
        url = f"http://{host}/"
        assert environment.settings(url).proxies == get_environ_proxies(url)
    assert "http" not in environment.settings("http://direct.test/").proxies
    assert environment.settings("http://proxied.test/").proxies["http"] == "http://127.0.0.1:3128"


@pytest.mark.parametrize("named", [True, False], ids=["$NETRC", "~/.netrc"])
def test_a_netrc_file_gives_only_its_hosts_credentials(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    netrc = bare_environment / ("creds" if named else ".netrc")
    netrc.write_text("machine secret.test login alice password s3cret\n")
    netrc.chmod(0o600)
    if named:
        monkeypatch.setenv("NETRC", str(netrc))
    environment = Environment(FetchConfig())
    for host in ("secret.test", "open.test"):
        url = f"http://{host}/"
        assert environment.settings(url).auth == get_netrc_auth(url)
    assert environment.settings("http://secret.test/").auth == ("alice", "s3cret")
    assert environment.settings("http://open.test/").auth is None


def test_given_auth_overrides_netrc_for_every_host(bare_environment: Path) -> None:
    (bare_environment / ".netrc").write_text("machine secret.test login a password b\n")
    environment = Environment(FetchConfig(auth=("me", "pw")))
    assert environment.settings("http://secret.test/").auth is None  # the config's auth goes


def test_per_host_answers_are_kept_for_the_hosts_used_last(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setattr(lookups, "ENVIRONMENTS_KEPT", 50)
    environment = Environment(FetchConfig())
    for i in range(500):
        environment.settings(f"http://h{i}.test/")
    assert len(environment._known) == 50
