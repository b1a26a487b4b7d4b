"""``python -m shared.cli``: the same as the ``pipeline-gateway`` console script."""

from __future__ import annotations

import sys

from shared.cli.main import main

sys.exit(main())
