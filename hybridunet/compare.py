"""Deprecated: the comparison code lives in `hybridunet.comparison` since 0.2.

This module re-exports its public names for one release and warns on import.
"""

import warnings

from hybridunet.comparison import *  # noqa: F403 -- the shim re-exports the package's face
from hybridunet.comparison import __all__  # noqa: F401

warnings.warn("hybridunet.compare is deprecated: import from hybridunet.comparison (same names; a pair's "
              "outcome is now one PairOutcome)", DeprecationWarning, stacklevel=2)
