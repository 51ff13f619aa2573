"""Pruning: importance, plans, module fix-ups, the checked apply and specs (the API function is :func:`isodeploy.prune`)."""
