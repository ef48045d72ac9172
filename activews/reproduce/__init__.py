"""The experiments of Ash & Adams (NeurIPS 2020) as named presets (``activews reproduce PROTOCOL``):
:mod:`.presets` defines and registers them, :mod:`.render` lays their results out as the paper does."""

from activews.reproduce.base import Protocol, ProtocolReport, ProtocolTable
from activews.reproduce.presets import (
    PROTOCOLS,
    describe_protocols,
    get_protocol,
    protocol_of_run,
    protocol_values,
    render,
    write_protocol_report,
)

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "ProtocolReport",
    "ProtocolTable",
    "describe_protocols",
    "get_protocol",
    "protocol_of_run",
    "protocol_values",
    "render",
    "write_protocol_report",
]
