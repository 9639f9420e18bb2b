"""The row-run engine: do something to each row of a table, under a lease, at a provider's rate,
record the outcome, charge once, survive a crash.

- ``models``: a run and its rows (the work items), in PostgreSQL.
- ``executor``: the seam. A kind of job (enrichment's provider waterfall today) implements
  ``Executor`` and registers itself; the engine never imports it.
- ``jobs``: a run's job slots and their ids; ``leases``: claiming, releasing, expiring, pausing,
  finishing and failing; ``limits``: the limiters and breakers a batch's calls share.
- ``execute``: the job loop; ``write``: filing a batch (the one charging path);
  ``callbacks``: asynchronous answers; ``reconcile``: the periodic repair.
"""
