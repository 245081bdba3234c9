"""Background work as durable jobs: a queue in the database, runners in every server worker
and in `moorage worker`, one small task module per kind."""
