"""The captioning engine. Nothing in this package imports Textual."""
