"""The ticket worker: the job queue on the database, the runner, and its own process."""
