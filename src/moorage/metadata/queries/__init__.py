"""Query modules, one per aggregate, each bound to a unit of work (`metadata/uow.py`)."""
