"""The Textual front end: a view over the Pipeline's events (see app.py)."""
