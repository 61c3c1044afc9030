"""ftlab backend ``extractive``: a trivial floor for generation tasks."""
