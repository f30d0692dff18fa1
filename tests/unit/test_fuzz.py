"""Fuzzing the whole replay path (tests/fuzz_target.py): every input in tests/fuzz-corpus, and a
bounded run of mutated captures in every test run (FLOWVIZ_FUZZ_EXAMPLES, default 300; scripts/fuzz
runs longer and adds what fails to the corpus)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fuzz_target

SEEDS = fuzz_target.seeds()
CORPUS = sorted(n for n in os.listdir(fuzz_target.CORPUS) if n.endswith((".pcap", ".pcapng")))


@pytest.mark.parametrize("name", CORPUS)
def test_every_corpus_input_is_handled(name):
    with open(os.path.join(fuzz_target.CORPUS, name), "rb") as f:
        fuzz_target.run(f.read())


edit = st.tuples(st.integers(0, 1 << 20), st.integers(0, 3), st.integers(0, 255))


@settings(max_examples=int(os.environ.get("FLOWVIZ_FUZZ_EXAMPLES", "300")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, len(SEEDS) - 1), edits=st.lists(edit, min_size=1, max_size=6))
def test_mutated_captures_end_in_journeys_or_one_clean_error(seed, edits):
    fuzz_target.run(fuzz_target.mutate(SEEDS[seed], edits))
