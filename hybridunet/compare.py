"""Deprecated: the comparison code moved to `hybridunet.comparison` (see CHANGELOG.md).

This module re-exports its public names until the next release and warns on import.
"""

import warnings

from hybridunet.comparison import *  # noqa: F403 -- the shim re-exports the package's face
from hybridunet.comparison import __all__  # noqa: F401

warnings.warn("hybridunet.compare is deprecated: import from hybridunet.comparison (its public names; some old "
              "ones are gone or renamed and progress= is now on_event=, keyword-only: CHANGELOG.md lists them; a "
              "pair's outcome is now one PairOutcome)", DeprecationWarning, stacklevel=2)
