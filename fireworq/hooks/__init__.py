"""
Event hooks (protocol B12): definitions that turn job events into jobs of
the internal queue ``_hooks``, delivered by the ordinary dispatcher.

  - L{model}: a hook definition, its validation and answers, the
    ``_hooks`` queue's built-in defaults;
  - L{storage}: where definitions are kept (memory, sqlite, MySQL);
  - L{matcher}: the hook jobs an event makes (called by the job stores,
    inside the transaction of the change the event reports);
  - L{registry}: this node's hooks, reloaded every
    ``config_refresh_interval``, and the API's changes.
"""
