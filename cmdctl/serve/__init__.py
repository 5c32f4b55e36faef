"""`cmdctl serve`: an HTTP JSON API, a Server-Sent Events feed and one web page over the journal.

Owns the HTTP side (parsing requests, the token, Host/Origin checks, routing) and `ops`, the one
place that turns a request into journal and inventory calls. Only the CLI imports it; it prints
nothing (the CLI hands it a `log` function).
"""
