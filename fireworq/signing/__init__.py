"""
Signed deliveries (Standard Webhooks): per-queue secrets made by the server,
kept in the store of the driver, and the headers that sign a delivery.

Modules:

  - L{keys}: the secret format and L{SigningKeys} (a queue's current and
    previous secret);
  - L{signer}: L{Signer}, the three ``webhook-*`` headers of one delivery;
  - L{interface}: L{ISigningKeyStore}, where secrets are kept;
  - L{memory}, L{sqlite}, L{mysql}: the stores of the three drivers;
  - L{service}: L{SigningService}, the node's cache of decoded keys
    (refreshed every ``config_refresh_interval``) and the changes the API
    makes (turn on/off, rotate).
"""
