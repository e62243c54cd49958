"""Live data feeds: FIWARE/NGSI-LD messages in, cleansed typed records out.

- :mod:`twin.feeds.ngsi` — the message model (``TrafficFlowObserved``, ``Alert``, closures
  as ``Alert`` ``roadClosed``/``roadWorks``) in NGSI-LD normalized and keyValues forms, and
  the typed records :class:`Observation`, :class:`AlertEvent`, :class:`ClosureEvent`;
- :mod:`twin.feeds.sensors` — sensor table, segment ids and locations -> links;
- :mod:`twin.feeds.cleanse` — validation, units, de-duplication, reordering,
  plausibility, stuck sensors, the dead-letter file and counters per source;
- :mod:`twin.feeds.hub` — :class:`FeedHub`, the one queue every source feeds and the
  twin drains by sim time;
- transports: :mod:`twin.feeds.replay` (JSONL/CSV files), :mod:`twin.feeds.mqtt`
  (paho-mqtt, persistent QoS-1 session), :mod:`twin.feeds.http` (NGSI-LD notifications).
"""

from twin.feeds.cleanse import OUTCOMES, Cleanser, DeadLetter, Outcome
from twin.feeds.hub import FeedHub, build_source, parse_feed_url
from twin.feeds.ngsi import (
    AlertEvent,
    ClosureEvent,
    FeedClock,
    MessageError,
    Observation,
    Record,
    Units,
    entities_of,
    to_entity,
    to_key_values,
    to_normalized,
    to_record,
)
from twin.feeds.sensors import LinkMapper, read_sensor_table

__all__ = [
    "OUTCOMES",
    "AlertEvent",
    "Cleanser",
    "ClosureEvent",
    "DeadLetter",
    "FeedClock",
    "FeedHub",
    "LinkMapper",
    "MessageError",
    "Observation",
    "Outcome",
    "Record",
    "Units",
    "build_source",
    "entities_of",
    "parse_feed_url",
    "read_sensor_table",
    "to_entity",
    "to_key_values",
    "to_normalized",
    "to_record",
]
