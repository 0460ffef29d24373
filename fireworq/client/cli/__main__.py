"""``python -m fireworq.client.cli``: the same as the ``fireworq`` command."""

import sys

from fireworq.client.cli import main

sys.exit(main())
