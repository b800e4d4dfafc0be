"""The commit-and-prove machinery every proof is built from: the shared prover/verifier context
(committed scalars, the proof stream, deferred batched checks), sigma protocols over Pedersen
commitments, and the zero-knowledge sumcheck with its product reductions."""
