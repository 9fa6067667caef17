"""Child processes that a test interrupts with Ctrl-C."""

from __future__ import annotations

import signal


def default_ctrl_c() -> None:
    """A `preexec_fn` for a child the test will send SIGINT. A shell that runs a job in the
    background (`cmd &`, some CI runners) makes it ignore SIGINT, every child inherits that,
    and Python then installs no KeyboardInterrupt handler: the child would never see Ctrl-C.
    A blocked SIGINT, inherited the same way, is unblocked too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
