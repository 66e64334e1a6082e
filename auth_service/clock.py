"""Time as the service sees it: injectable so expiry and rate limits can be tested."""

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, like time.time."""

system_clock: Clock = time.time
