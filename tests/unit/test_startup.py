"""The command line's imports run with the collector held off, and leave it as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from urlfleet.cli import main
from urlfleet.cli.startup import collector_held, thaw


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    yield
    thaw()
    gc.enable()


def test_held_off_inside_and_what_was_made_frozen_after() -> None:
    with collector_held():
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


def test_an_enclosing_hold_is_not_ended_by_an_inner_one() -> None:
    with collector_held():
        with collector_held():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_gives_the_collector_back() -> None:
    with pytest.raises(ZeroDivisionError), collector_held():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    with collector_held():
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_the_command_line_leaves_the_collector_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):  # argparse exits from inside the hold
        main(["--version"])
    assert "urlfleet" in capsys.readouterr().out
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_objects_the_caller_froze_stay_frozen() -> None:
    gc.freeze()  # a caller's own, say before forking workers
    theirs = gc.get_freeze_count()
    with collector_held():
        pass
    thaw()
    assert gc.get_freeze_count() >= theirs > 0
    gc.unfreeze()
