"""The terminal UI behind `follow` and `replay` on a terminal (textual).

One factory builds the app for the CLI and for the tests. The app is handed
a source and a correlator; it never asks which kind of source it has.
"""

from __future__ import annotations

from typing import Optional


def create_app(source, correlator, flt=None, *, sinks=(), count: Optional[int] = None,
               duration: Optional[float] = None, autoplay: bool = True, follow_latest: bool = False):
    from .app import FlowvizApp
    return FlowvizApp(source, correlator, filter_text=flt.describe() if flt is not None else "everything",
                      sinks=sinks, count=count, duration=duration, autoplay=autoplay,
                      follow_latest=follow_latest)


def run_app(source, correlator, flt=None, **kw) -> None:
    create_app(source, correlator, flt, **kw).run()
