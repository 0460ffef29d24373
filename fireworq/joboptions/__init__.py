"""
The job options of protocol B7.

  - L{values}: the frozen values (L{JobOptions <values.JobOptions>},
    L{QueueDefaults <values.QueueDefaults>}), their merge, how answers show
    them and how stores keep them; imports nothing of the server, so
    L{fireworq.model} may use it;
  - L{parse}: validation of a push's options, of the C{Idempotency-Key}
    header and of a queue definition's job defaults (400s naming the field).

Import from the submodules (this package imports neither, so that
L{fireworq.model} can import L{values} without the web layer).
"""
