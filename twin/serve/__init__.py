"""``twin serve``: the live operations picture, a browser dashboard over a running twin.

The server drives a :class:`~twin.model.Twin` through its public API in one thread
(:mod:`twin.serve.runner`), publishes its state as plain JSON (:mod:`twin.serve.picture`),
pushes the changes over a WebSocket to every browser (:mod:`twin.serve.app`) and takes
operator controls (:mod:`twin.serve.controls`), each checked, authorised by token and
written into the after-action log.  The page itself (HTML, JS, CSS) lives in ``viz/web``.
"""

from __future__ import annotations

__all__ = ["build_app", "Runner", "Tokens"]

from twin.serve.app import build_app
from twin.serve.auth import Tokens
from twin.serve.runner import Runner
