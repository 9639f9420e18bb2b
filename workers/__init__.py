"""Worker processes: ``python -m workers <queues...>`` and the scheduler."""
