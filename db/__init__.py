"""Shared state layer of the service: settings, ORM tables, the job repository with its status
machine, API keys and the artifact store. Used by the API and the worker; imports no torch."""
