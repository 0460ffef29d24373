"""
Authentication and limits of the API (off unless ``--auth``): bearer
tokens with scopes and tenants (L{tokens}), where they are kept
(L{storage}), the node's cache of them (L{registry}), token buckets
(L{limits}), the table of which scope each route needs (L{policy}) and
the gate in front of the site that applies it (L{gate}).  See
docs/security.md.
"""
