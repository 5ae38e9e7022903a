"""The system of record: SQLAlchemy 2 typed models, engine/session factory, repositories."""
