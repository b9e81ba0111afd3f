"""Write tests/data/pymteval_cases.jsonl: tiny random corpora and the official pymteval's scores.

The official scorer's Python BLEU/NIST (tuetschek/e2e-metrics, ``metrics/pymteval.py``, run
by ``measure_scores.py -p``) needs the ``future`` package, which lorabook does not install, so
the tests compare ``lorabook.e2e.metrics.pymteval_bleu_nist`` with scores stored here. Run in
any Python 3 with ``future`` (``pip install future``) and a checkout of e2e-metrics:

    python tools/pymteval_cases.py /path/to/e2e-metrics [tests/data/pymteval_cases.jsonl]

The corpora use words that the two BLEU/NIST variants treat differently: capitals (A-Z and
"É"), numbers with dashes, commas and periods, SGML entities, empty and very short outputs,
MRs with 1 to 5 references. A corpus whose NIST the official code cannot compute (it divides
by zero) stores ``null`` for NIST.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

WORDS = (
    "the The THE Vaults vaults É é École école ÉTÉ été pub £20-25 £30 5 out of , . 0 - "
    "kid-friendly near Café café &amp; 5.5 1,000 a A"
).split()
CASES = 150
SEED = 1


def random_corpus(rng: random.Random) -> tuple[list[str], list[list[str]]]:
    """One to six MRs: an output of 0-12 words and 1-5 references of 1-12 words each."""
    outputs, references = [], []
    for _ in range(rng.randint(1, 6)):
        length = rng.choice([0, 0, 1, 2, 3, 4, 5, 8, 12])
        outputs.append(" ".join(rng.choice(WORDS) for _ in range(length)))
        references.append(
            [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
                for _ in range(rng.randint(1, 5))
            ]
        )
    return outputs, references


def main(argv: list[str]) -> int:
    """Generate the cases, score them with the official code, write the JSON file."""
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, argv[0])
    from metrics.pymteval import BLEUScore, NISTScore  # the official code

    out = Path(argv[1]) if len(argv) == 2 else Path("tests/data/pymteval_cases.jsonl")
    rng = random.Random(SEED)
    cases = []
    for _ in range(CASES):
        outputs, references = random_corpus(rng)
        bleu, nist = BLEUScore(), NISTScore()
        for output, refs in zip(outputs, references, strict=True):
            bleu.append(output, refs)
            nist.append(output, refs)
        try:
            nist_score = nist.score()
        except ZeroDivisionError:
            nist_score = None
        cases.append(
            {"outputs": outputs, "references": references, "bleu": bleu.score(), "nist": nist_score}
        )
    out.write_text("".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases))
    print(f"wrote {len(cases)} cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
