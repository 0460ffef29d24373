"""
Job history and results (protocol B8): finished jobs a queue keeps for its
``retention``, with what the worker answered.

  - L{fireworq.history.record}: the kept job (L{KeptJob}), its state, the
    output captured from an answer, and the JSON the SQL stores keep;
  - L{fireworq.history.filters}: the ``name=`` and ``tag=`` filters of the
    job lists, the failure log and ``/completed``;
  - L{fireworq.history.cleaner}: deletion of jobs past their retention by
    the node holding the queue's lease.

The stores keep kept jobs in their own storage (in-memory dicts, the SQLite
and MySQL tables ``fireworq_jq_done(<key>)``); see docs/storage.md.
"""
