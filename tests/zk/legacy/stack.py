"""The retired, NON-zero-knowledge protocol (plain claim book), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from legacy import hyrax
from legacy.claims import Claim
from zk.commit.hyrax import HyraxCommitment, HyraxWitness
from zk.errors import ProverError, VerificationError
from zk.head.stack import StackLayout, commit  # noqa: F401
from zk.transcript import Transcript


def claim(layout: StackLayout, name: str, point, value: int) -> Claim:
    return Claim(layout.point(name, point), value)


@dataclass
class ClaimBook:
    """Claims per stack, in the order the protocol makes them."""

    claims: dict[str, list[Claim]] = field(default_factory=dict)

    def add(self, stack: str, claim: Claim) -> None:
        self.claims.setdefault(stack, []).append(claim)

    def open(self, stack: str, witness: HyraxWitness, commitment: HyraxCommitment,
             t: Transcript, rng: np.random.Generator | None = None) -> hyrax.HyraxOpening:
        """Prove every claim recorded on ``stack``."""
        claims = self.claims.get(stack, [])
        if not claims:
            raise ProverError(f"no claims on stack {stack}")
        return hyrax.open_claims(witness, commitment, claims, t, rng=rng)

    def check(self, stack: str, commitment: HyraxCommitment, opening: hyrax.HyraxOpening,
              t: Transcript) -> None:
        """Verify the opening of every claim recorded on ``stack``."""
        claims = self.claims.get(stack, [])
        if not claims:
            raise VerificationError(f"no claims on stack {stack}")
        hyrax.verify(commitment, claims, opening, t)
