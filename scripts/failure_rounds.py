"""The later rounds of the failure corpus, in order (scripts/failure_round5.py onwards). Each is a
table of causes (SHARED on both runners, TRAINER for FineTune Lab's trainer child, BARE for the
plain TRL script) with the files it needs (`write_datasets`, `write_models`) and the checkpoint
damages it does (`damage`), each left out by a round that has none. scripts/failure_cases.py, scripts/bare_trl_cases.py and
scripts/failure_corpus.py take every round from here: add a round by adding its module below."""

from __future__ import annotations

import failure_round5
import failure_round6
import failure_round7
import failure_round8
import failure_round9
import failure_round10
import failure_round11
import failure_round12
import failure_round13
import failure_round14
import failure_round15
import failure_round16
import failure_round17
import failure_round18
import failure_round19
import failure_round20
import failure_round21
import failure_round22
import failure_round23
import failure_round24
import failure_round25
import failure_round26
import failure_round27
import failure_round28
import failure_round29
import failure_round30
import failure_round31
import failure_round32
import failure_round33

ROUNDS = [failure_round5, failure_round6, failure_round7, failure_round8, failure_round9, failure_round10,
          failure_round11, failure_round12, failure_round13,
          failure_round14, failure_round15, failure_round16,
          failure_round17, failure_round18, failure_round19,
          failure_round20, failure_round21, failure_round22,
          failure_round23, failure_round24, failure_round25, failure_round26,
          failure_round27, failure_round28, failure_round29, failure_round30,
          failure_round31, failure_round32, failure_round33]
