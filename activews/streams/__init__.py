"""Streams (which examples are labeled each round) and acquisition functions."""

from activews.streams import selectors  # noqa: F401  (importing it registers bald, badge, coreset)
from activews.streams.acquisition import (
    ACQUISITIONS,
    BatchSelector,
    ScoringSelector,
    get_acquisition,
    list_acquisitions,
    make_acquisition,
    register_acquisition,
)
from activews.streams.active import ActiveStream
from activews.streams.base import STREAMS, ModelView, ProbaFn, Round, Stream, register_stream
from activews.streams.passive import PassiveStream
from activews.streams.selective import SelectiveStream

__all__ = [
    "ACQUISITIONS",
    "ActiveStream",
    "BatchSelector",
    "ModelView",
    "PassiveStream",
    "ProbaFn",
    "Round",
    "STREAMS",
    "ScoringSelector",
    "SelectiveStream",
    "Stream",
    "get_acquisition",
    "list_acquisitions",
    "make_acquisition",
    "register_acquisition",
    "register_stream",
]
