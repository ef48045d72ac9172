"""Streams (which examples are labeled each round) and acquisition functions."""

from activews.streams.acquisition import (
    ACQUISITIONS,
    get_acquisition,
    list_acquisitions,
    register_acquisition,
)
from activews.streams.active import ActiveStream
from activews.streams.base import STREAMS, ProbaFn, Round, Stream, register_stream
from activews.streams.passive import PassiveStream
from activews.streams.selective import SelectiveStream

__all__ = [
    "ACQUISITIONS",
    "ActiveStream",
    "PassiveStream",
    "ProbaFn",
    "Round",
    "STREAMS",
    "SelectiveStream",
    "Stream",
    "get_acquisition",
    "list_acquisitions",
    "register_acquisition",
    "register_stream",
]
