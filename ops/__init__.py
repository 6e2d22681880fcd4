"""Operations: the command line that starts the database, migrates, provisions and serves both services.

The one place allowed to import both services; the services themselves never import each other.
"""
