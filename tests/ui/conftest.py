"""UI tests drive the real app (the same factory the CLI uses) fed from captures."""

from __future__ import annotations

import pytest

from support import sample


@pytest.fixture
def make_app():
    from flowviz.correlate import Correlator
    from flowviz.sources.replay import ReplaySource
    from flowviz.tui import create_app

    def make(*paths, autoplay=False, follow_latest=False, correlator=None, source=None):
        src = source if source is not None else ReplaySource([sample(p) if "/" not in p else p for p in paths])
        corr = correlator if correlator is not None else Correlator(topology=getattr(src, "topology", None))
        return create_app(src, corr, autoplay=autoplay, follow_latest=follow_latest)
    return make

