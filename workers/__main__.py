"""``python -m workers <queues...>``: see workers.worker."""

import sys

from workers.worker import main

sys.exit(main())
