"""The one locality-sensitive hashing mechanism of the workbench: hash families and hash tables.

Families (one interface: ``K`` hashes per table, ``L`` tables, a batch hashed in one call)
    HashFamily, SimHash, DWTA, HASH_FAMILIES, make_family, from_state_dict, measured_collision
Tables (per-bucket sums and counts: the Nadaraya–Watson sketch; per-bucket item lists: LSH retrieval)
    LSHTables
Output layers for very many classes (the large-outputs lab; experiments in :mod:`workbench.hashing.large_outputs`,
data in :mod:`workbench.hashing.xc`)
    OutputLayer (the protocol), LSHSoftmax (sampled softmax with uniform / unigram / LSH negatives),
    HashedSparseLinear (SLIDE: per-input active neurons retrieved from tables over the weight rows; its output
    SparseActivations)

Used by :mod:`workbench.sampling` (the NW-sketch sampler) and by the LSH softmax and SLIDE-style hashed layers.
"""

from workbench.hashing.families import (
    DWTA,
    HASH_FAMILIES,
    MAX_CODE_BITS,
    HashFamily,
    SimHash,
    from_state_dict,
    make_family,
    measured_collision,
)
from workbench.hashing.tables import DEFAULT_MAX_BUCKETS, LSHTables

from workbench.hashing.output import OutputLayer  # noqa: E402  (the large-outputs lab's layers)
from workbench.hashing.softmax import LSHSoftmax  # noqa: E402
from workbench.hashing.slide import HashedSparseLinear, SparseActivations  # noqa: E402

__all__ = ["HashFamily", "SimHash", "DWTA", "HASH_FAMILIES", "make_family", "from_state_dict",
           "measured_collision", "MAX_CODE_BITS", "LSHTables", "DEFAULT_MAX_BUCKETS"]
__all__ += ["OutputLayer", "LSHSoftmax", "HashedSparseLinear", "SparseActivations"]
