"""SIGTERM as Ctrl-C (:mod:`latentzoo.signals`), in real processes: a signal to this test's own
process would start the watchdog that ends it."""

from __future__ import annotations

import signal
import subprocess
import textwrap

from testutils import started

# Waits in time.sleep, as an evaluation waits in a long C call; reports what happened on stdout.
STOPPED = textwrap.dedent("""
    import signal, time
    from latentzoo.signals import StopOnSigterm, Terminated

    before = signal.getsignal(signal.SIGTERM)
    with StopOnSigterm() as sigterm:
        try:
            print("ready", flush=True)
            time.sleep(60)
        except Terminated as err:
            assert err is sigterm.received
            print("raised", type(err).__mro__[1].__name__, flush=True)
        signal.raise_signal(signal.SIGTERM)  # the second one
        print("second ignored", flush=True)
    print("restored", signal.getsignal(signal.SIGTERM) == before, flush=True)
""")

# A shutdown that never ends: it swallows the interrupt and waits on.
STUCK = textwrap.dedent("""
    import time
    from latentzoo.signals import StopOnSigterm

    with StopOnSigterm(grace_s=1):
        while True:
            try:
                print("ready", flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                pass
""")


def test_the_first_sigterm_raises_where_the_process_waits_and_the_second_is_ignored() -> None:
    with started("-c", STOPPED, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["raised KeyboardInterrupt", "second ignored", "restored True"]


def test_a_process_still_alive_after_the_grace_period_exits_with_143() -> None:
    with started("-c", STUCK, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "latentzoo: still running 1 s after SIGTERM; exiting without cleaning up" in err
