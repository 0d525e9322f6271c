"""Ctrl-C held back over blocks that must not be cut: noted inside, delivered or handed
to the caller after, the handler put back. Signals are real (signal.raise_signal)."""

import signal

import pytest

from fastinit.engine.interrupts import ctrl_c_held, interrupts_deferred


def test_ctrl_c_inside_a_held_block_is_recorded_for_the_caller():
    finished = False
    with ctrl_c_held() as pending:
        signal.raise_signal(signal.SIGINT)
        finished = True
    assert finished and len(pending) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_inside_a_deferred_block_is_raised_when_the_block_ends():
    finished = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_is_not_lost_when_the_deferred_block_fails():
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            raise OSError("disk full")


def test_deferred_block_without_ctrl_c_changes_nothing():
    with interrupts_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
